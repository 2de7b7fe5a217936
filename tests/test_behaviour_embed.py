"""Tests of shortlist.items.behaviour: co-occurrence counts and PPMI against hand-computed values,
the PPMI-SVD behaviour embeddings (shapes, normalisation, items without behaviour, determinism),
their fusion with content embeddings, the known answer that fusion separates items with identical
content but disjoint co-occurrence, bad input, and the tokenize pipeline / CLI option."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shortlist.cli import app
from shortlist.data.sequences import Jagged
from shortlist.data.synthetic import SyntheticConfig, generate
from shortlist.items.behaviour import (
    BehaviourConfig,
    CooccurrenceSVD,
    cooccurrence_matrix,
    fuse_with_behaviour,
    ppmi,
)
from shortlist.items.pipeline import TokenizeConfig, tokenize
from shortlist.items.quantizers import ResidualKMeans


def jagged(*seqs: list[int]) -> Jagged:
    values = np.array([v for s in seqs for v in s], dtype=np.int64)
    return Jagged.from_lengths(values, np.array([len(s) for s in seqs]))


def communities(n_per: int = 8, n_seqs: int = 60, length: int = 10, seed: int = 0) -> Jagged:
    """Sequences that stay inside one of two item communities: 1..n_per and n_per+1..2*n_per."""
    rng = np.random.default_rng(seed)
    seqs = []
    for s in range(n_seqs):
        base = 1 + (s % 2) * n_per
        seqs.append(list(base + rng.integers(0, n_per, size=length)))
    return jagged(*seqs)


# -- counts and PPMI ------------------------------------------------------------------------------
def test_cooccurrence_counts_by_hand() -> None:
    seqs = jagged([1, 2, 3], [2, 3], [4, 4, 1])
    C = cooccurrence_matrix(seqs, num_items=5, window=1).toarray()
    assert C.shape == (6, 6)
    expected = np.zeros((6, 6))
    for a, b, n in ((1, 2, 1), (2, 3, 2), (4, 1, 1)):  # (4, 4) is a repeat: not counted
        expected[a, b] = expected[b, a] = n
    np.testing.assert_array_equal(C, expected)
    C2 = cooccurrence_matrix(seqs, num_items=5, window=2).toarray()
    assert C2[1, 3] == C2[3, 1] == 1  # two apart inside sequence 0
    assert C2[4, 1] == C2[1, 4] == 2  # 4 -> 1 at gaps 1 and 2
    assert C2[3, 2] == 2 and C2[3, 4] == 0  # nothing across sequence boundaries


def test_ppmi_matches_the_formula() -> None:
    counts = np.array([[0, 0, 0], [0, 0, 3], [0, 3, 1]], dtype=float)
    P = ppmi(counts, alpha=1.0).toarray()
    r = counts.sum(1)
    c = counts.sum(0) / counts.sum()
    # PMI(1, 2) = log(3 / (3 * 4/7)) = log(7/4) > 0; PMI(2, 2) = log(1 / (4 * 3/7)) < 0 -> dropped
    assert math.isclose(P[1, 2], math.log(3 / (r[1] * c[2])))
    assert math.isclose(P[1, 2], math.log(7 / 4))
    assert P[2, 2] == 0 and P[0].sum() == 0


# -- embeddings ------------------------------------------------------------------------------------
def test_embeddings_shape_norm_and_items_without_behaviour() -> None:
    seqs = communities()  # items 1..16; item 17 never appears
    model = CooccurrenceSVD(BehaviourConfig(dim=4)).fit(seqs, num_items=17)
    E = model.embeddings_
    assert E.shape == (18, 4) and E.dtype == np.float32
    assert not E[0].any() and not E[17].any()  # padding and the item without behaviour
    assert model.has_behaviour_.tolist() == [False] + [True] * 16 + [False]
    np.testing.assert_allclose(np.linalg.norm(E[1:17], axis=1), 1.0, atol=1e-5)
    again = CooccurrenceSVD(BehaviourConfig(dim=4)).fit(seqs, num_items=17).embeddings_
    np.testing.assert_array_equal(E, again)  # deterministic for a seed
    # the two communities are far apart in behaviour space
    inside = E[1:9] @ E[1:9].T
    across = E[1:9] @ E[9:17].T
    assert inside.mean() > 0.5 and abs(across).max() < 0.3


def test_fusion_separates_identical_content_with_disjoint_behaviour() -> None:
    """Items i and i+8 have the same text but are bought by different users: content-only codes
    cannot tell them apart; fused with behaviour, every pair gets distinct codes."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((8, 12))
    content = np.vstack([base, base])  # (16, 12): item i and item i + 8 are identical
    behaviour = CooccurrenceSVD(BehaviourConfig(dim=4)).fit(communities(), 16).embeddings_[1:]
    fused = fuse_with_behaviour(content, behaviour, weight=2.5)  # (16, 16)

    def codes(X: np.ndarray) -> np.ndarray:
        return ResidualKMeans(n_levels=2, codebook_size=4, seed=0).fit(X).labels_  # (16, 2)

    plain = codes(content / np.linalg.norm(content, axis=1, keepdims=True))
    assert all((plain[i] == plain[i + 8]).all() for i in range(8))
    mixed = codes(fused)
    assert all((mixed[i] != mixed[i + 8]).any() for i in range(8))


def test_fuse_with_behaviour_dims_weights_and_missing_rows() -> None:
    rng = np.random.default_rng(0)
    content = rng.standard_normal((5, 3)) * 4
    behaviour = rng.standard_normal((5, 2))
    behaviour[3] = 0.0  # no behaviour for item 3
    content[0], behaviour[0] = 0.0, 0.0  # a padding row
    w = 2.0
    F = fuse_with_behaviour(content, behaviour, weight=w)
    assert F.shape == (5, 5) and F.dtype == np.float32
    assert not F[0].any()
    np.testing.assert_allclose(np.linalg.norm(F[1:], axis=1), 1.0, atol=1e-6)
    c = content / np.linalg.norm(content, axis=1, keepdims=True).clip(1e-12)
    b = behaviour / np.linalg.norm(behaviour, axis=1, keepdims=True).clip(1e-12)
    # inner product of two rows with both blocks: (cos_content + w^2 cos_behaviour) / (1 + w^2)
    expected = (c[1] @ c[2] + w**2 * (b[1] @ b[2])) / (1 + w**2)
    assert math.isclose(float(F[1] @ F[2]), expected, rel_tol=1e-5)
    np.testing.assert_allclose(F[3], np.concatenate([c[3], [0.0, 0.0]]), atol=1e-6)
    # weight 0: the behaviour block vanishes
    F0 = fuse_with_behaviour(content, behaviour, weight=0.0)
    np.testing.assert_allclose(F0[1:, :3], c[1:], atol=1e-6)
    assert not F0[:, 3:].any()


# -- bad input -------------------------------------------------------------------------------------
def test_bad_input_names_the_field() -> None:
    content, behaviour = np.ones((4, 3)), np.ones((4, 2))
    with pytest.raises(ValueError, match="'content' has 5 rows but 'behaviour' has 4"):
        fuse_with_behaviour(np.ones((5, 3)), behaviour)
    bad = content.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"'content' holds NaN.*row 2"):
        fuse_with_behaviour(bad, behaviour)
    with pytest.raises(ValueError, match=r"'behaviour' must be an \(N, D\) array"):
        fuse_with_behaviour(content, np.ones(4))
    with pytest.raises(ValueError, match="'weight' parameter of fuse_with_behaviour"):
        fuse_with_behaviour(content, behaviour, weight=-1.0)
    with pytest.raises(ValueError, match="'has_behaviour'"):
        fuse_with_behaviour(content, behaviour, has_behaviour=np.ones(3, bool))

    seqs = jagged([1, 2, 3])
    with pytest.raises(ValueError, match=r"\[1, num_items=2\]"):
        cooccurrence_matrix(seqs, num_items=2)
    with pytest.raises(ValueError, match="0 is padding"):
        cooccurrence_matrix(jagged([0, 1]), num_items=2)
    with pytest.raises(TypeError, match="Jagged"):
        CooccurrenceSVD(BehaviourConfig(dim=2)).fit([[1, 2]], num_items=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'num_items' argument must be an int > 8"):
        CooccurrenceSVD(BehaviourConfig(dim=8)).fit(seqs, num_items=3)
    with pytest.raises(ValueError, match="no two distinct items"):
        CooccurrenceSVD(BehaviourConfig(dim=1)).fit(jagged([1, 1], [2]), num_items=3)
    for params, name in (
        ({"dim": 0}, "dim"),
        ({"window": 0}, "window"),
        ({"alpha": 0.0}, "alpha"),
        ({"weight": float("nan")}, "weight"),
        ({"seed": -1}, "seed"),
    ):
        with pytest.raises(ValueError, match=f"The '{name}' parameter of BehaviourConfig"):
            BehaviourConfig(**params)
    with pytest.raises(TypeError, match="BehaviourConfig"):
        TokenizeConfig(behaviour={"dim": 8})  # type: ignore[arg-type]


# -- pipeline and CLI -------------------------------------------------------------------------------
def _data():
    return generate(
        SyntheticConfig(n_users=150, n_items=120, n_topics=6, n_categories=3, mean_length=12)
    )


def test_tokenize_with_behaviour() -> None:
    data = _data()
    cfg = TokenizeConfig(
        encoder_params={"dim": 16},
        behaviour=BehaviourConfig(dim=8),
        levels=2,
        codebook_size=8,
    )
    result = tokenize(data, cfg)
    assert result.embeddings.shape == (data.num_items + 1, 16 + 8)
    assert not result.embeddings[0].any()
    assert "behaviour_s" in result.report["timings"]
    assert result.report["config"]["behaviour"]["dim"] == 8
    plain = tokenize(data, TokenizeConfig(encoder_params={"dim": 16}, levels=2, codebook_size=8))
    assert plain.embeddings.shape[1] == 16


def test_cli_tokenize_behaviour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shortlist.cli as cli

    monkeypatch.setattr(cli, "_load", lambda *a, **k: _data())
    out = tmp_path / "tok"
    args = ["tokenize", "synthetic", "--out", str(out), "--dim", "16", "--levels", "2"]
    args += ["--codebook-size", "8", "--behaviour", "--behaviour-weight", "1.5"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["behaviour"]["weight"] == 1.5
    bad = CliRunner().invoke(app, [*args[:-1], "-1"])
    assert bad.exit_code != 0 and "weight" in bad.output


@pytest.mark.parametrize("kind", ["behaviour", "align"])
def test_tokenize_ignores_validation_and_test_events(kind: str) -> None:
    """Changing every user's last two events (validation and test) leaves the embeddings alone,
    with behaviour fusion and with QARM alignment (its Swing pairs come from training events)."""
    import dataclasses

    import polars as pl

    from shortlist.data.schema import ITEM

    data = _data()
    offsets = data.offsets()
    items = data.interactions[ITEM].to_numpy().copy()
    rng = np.random.default_rng(0)
    for end in offsets[1:][np.diff(offsets) >= 3]:
        items[end - 2 : end] = rng.integers(1, data.num_items + 1, size=2)
    changed = dataclasses.replace(
        data, interactions=data.interactions.with_columns(pl.Series(ITEM, items).cast(pl.Int32))
    )
    assert (changed.interactions[ITEM].to_numpy() != data.interactions[ITEM].to_numpy()).any()
    extra = (
        {"behaviour": BehaviourConfig(dim=8)}
        if kind == "behaviour"
        else {"align": "swing", "align_epochs": 1}
    )
    cfg = TokenizeConfig(encoder_params={"dim": 16}, levels=2, codebook_size=8, **extra)
    np.testing.assert_array_equal(tokenize(data, cfg).embeddings, tokenize(changed, cfg).embeddings)
