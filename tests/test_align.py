"""QARM item alignment: InfoNCE masking, recall@k against brute force, and alignment on a synthetic
task where behaviour lives in a hidden subspace of the content embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shortlist.data.pairs import Pairs
from shortlist.items.align import AlignConfig, QARMAligner, info_nce, recall_at_k


def make_task(
    n: int = 400, d_behaviour: int = 8, d_nuisance: int = 24, k_nn: int = 5, seed: int = 0
) -> tuple[np.ndarray, Pairs]:
    """Content = random rotation of [behaviour, 3x-larger nuisance]; pairs = behaviour k-NN.

    Raw content geometry is dominated by the nuisance dimensions, so behaviour neighbours are hard
    to find from it; a linear head that learns to project the nuisance away finds them.
    """
    rng = np.random.default_rng(seed)
    behaviour = rng.standard_normal((n + 1, d_behaviour))
    nuisance = 3.0 * rng.standard_normal((n + 1, d_nuisance))
    rotation, _ = np.linalg.qr(rng.standard_normal((d_behaviour + d_nuisance,) * 2))
    content = (np.concatenate([behaviour, nuisance], axis=1) @ rotation).astype(np.float32)
    content[0] = 0.0  # padding
    unit = behaviour[1:] / np.linalg.norm(behaviour[1:], axis=1, keepdims=True)
    sim = unit @ unit.T  # (n, n)
    np.fill_diagonal(sim, -np.inf)
    neighbours = np.argsort(-sim, axis=1)[:, :k_nn] + 1  # (n, k_nn) items 1..n
    trigger = np.repeat(np.arange(1, n + 1), k_nn)
    return content, Pairs(trigger, neighbours.ravel(), np.ones(len(trigger), np.float32), "syn")


def brute_recall(emb: np.ndarray, pairs: Pairs, k: int, exclude_self: bool) -> float:
    hits = []
    for t, g in zip(pairs.trigger, pairs.target, strict=True):
        scores = emb[1:] @ emb[t]  # (N,) items 1..N
        order = np.argsort(-scores, kind="stable") + 1
        if exclude_self:
            order = order[order != t]
        hits.append(g in order[:k])
    return float(np.mean(hits))


# -- alignment end to end ---------------------------------------------------------------------
def test_alignment_lowers_loss_and_raises_heldout_recall() -> None:
    content, pairs = make_task()
    train, test = pairs.holdout(0.2, seed=0)
    before = recall_at_k(content, test, k=10)
    aligner = QARMAligner(AlignConfig(dim_out=16, epochs=10, batch_size=200, lr=1e-2)).fit(
        content, train
    )
    after = recall_at_k(aligner.transform(content), test, k=10)
    losses = aligner.loss_history_
    assert len(losses) == 10 and losses[-1] < 0.5 * losses[0], losses
    assert before < 0.2, before  # raw content: nuisance dominates
    assert after > 0.8 and after > before + 0.5, (before, after)


def test_mlp_head_trains_and_outputs_unit_rows() -> None:
    content, pairs = make_task(n=200)
    cfg = AlignConfig(dim_out=12, hidden=32, epochs=4, batch_size=128, lr=1e-2)
    aligner = QARMAligner(cfg).fit(content, pairs)
    out = aligner.transform(content)
    assert out.shape == (201, 12) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out[1:], axis=1), 1.0, rtol=1e-5)
    assert not out[0].any(), "the all-zero padding row stays zero"
    assert aligner.loss_history_[-1] < aligner.loss_history_[0]
    assert aligner.n_features_in_ == content.shape[1] and aligner.fit_time_s_ > 0


def test_fit_is_deterministic_for_a_seed() -> None:
    content, pairs = make_task(n=150)
    cfg = AlignConfig(dim_out=8, epochs=2, batch_size=64, seed=3)
    a = QARMAligner(cfg).fit(content, pairs).transform(content)
    b = QARMAligner(cfg).fit(content, pairs).transform(content)
    np.testing.assert_array_equal(a, b)
    c = QARMAligner(AlignConfig(dim_out=8, epochs=2, batch_size=64, seed=4)).fit(content, pairs)
    assert not np.allclose(a, c.transform(content))


def test_fit_leaves_global_torch_rng_alone() -> None:
    content, pairs = make_task(n=100)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    QARMAligner(AlignConfig(dim_out=4, epochs=1, batch_size=64)).fit(content, pairs)
    assert torch.equal(torch.rand(3), expected)


def test_linear_head_starts_from_the_content_geometry() -> None:
    """With dim_out == D and no training steps that matter (lr tiny), recall equals the raw one."""
    content, pairs = make_task(n=200)
    cfg = AlignConfig(dim_out=content.shape[1], epochs=1, batch_size=64, lr=1e-9)
    aligned = QARMAligner(cfg).fit(content, pairs).transform(content)
    unit = content / np.maximum(np.linalg.norm(content, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(aligned @ aligned.T, unit @ unit.T, atol=1e-4)


# -- InfoNCE and its masking ------------------------------------------------------------------
def _reference_nce(
    zt: np.ndarray, zg: np.ndarray, t_ids: list[int], g_ids: list[int], tau: float
) -> float:
    """Plain loops: row i's softmax runs over column i and the columns j whose target item is
    neither g_i nor t_i."""
    losses = []
    for i in range(len(zt)):
        cols = [j for j in range(len(zg)) if j == i or g_ids[j] not in (g_ids[i], t_ids[i])]
        logits = np.array([zt[i] @ zg[j] / tau for j in cols])
        pos = cols.index(i)
        losses.append(-(logits[pos] - math.log(np.exp(logits).sum())))
    return float(np.mean(losses))


def _unit(rng: np.random.Generator, b: int, d: int) -> np.ndarray:
    x = rng.standard_normal((b, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_info_nce_masks_duplicate_targets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t_ids, g_ids = [1, 2, 3, 4, 9], [5, 5, 7, 1, 5]  # target 5 three times; trigger 1 is target 4
    zt, zg = _unit(rng, 5, 6), _unit(rng, 5, 6)
    tau = 0.1
    got = info_nce(
        torch.tensor(zt),
        torch.tensor(zg),
        torch.tensor(t_ids),
        torch.tensor(g_ids),
        tau,
        symmetric=False,
    )
    assert float(got) == pytest.approx(_reference_nce(zt, zg, t_ids, g_ids, tau), rel=1e-6)
    # the symmetric loss averages in the reverse direction, with the roles swapped
    sym = info_nce(
        torch.tensor(zt), torch.tensor(zg), torch.tensor(t_ids), torch.tensor(g_ids), tau
    )
    reverse = _reference_nce(zg, zt, g_ids, t_ids, tau)
    expected = (_reference_nce(zt, zg, t_ids, g_ids, tau) + reverse) / 2
    assert float(sym) == pytest.approx(expected, rel=1e-6)


def test_info_nce_duplicates_do_not_act_as_negatives() -> None:
    """Two pairs with one target and identical embeddings: unmasked, each positive also appears as
    a 'negative' with the same logit, so the loss cannot go below log 2; masked it can."""
    z = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=-1)
    same = info_nce(z, z, torch.tensor([1, 2]), torch.tensor([3, 3]), 0.1, symmetric=False)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    distinct = info_nce(z, z, torch.tensor([1, 2]), torch.tensor([3, 4]), 0.1, symmetric=False)
    assert float(distinct) == pytest.approx(math.log(2), rel=1e-6)


# -- recall@k -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seed", "k", "exclude_self"),
    [(0, 1, True), (1, 5, True), (2, 5, False), (3, 29, True), (4, 30, True), (5, 50, False)],
)
def test_recall_at_k_matches_brute_force(seed: int, k: int, exclude_self: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    emb = rng.standard_normal((n + 1, 4)).astype(np.float32)
    trigger = rng.integers(1, n + 1, size=60)
    target = rng.integers(1, n + 1, size=60)
    pairs = Pairs(trigger, target, np.ones(60, np.float32), "random")
    got = recall_at_k(emb, pairs, k=k, exclude_self=exclude_self)
    assert got == pytest.approx(brute_recall(emb, pairs, k, exclude_self))


def test_recall_at_k_hand_computed() -> None:
    emb = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    pairs = Pairs(np.array([1, 1, 3]), np.array([2, 3, 2]), np.ones(3, np.float32), "hand")
    # item 1's nearest other item is 2; item 3's nearest other is 2 (0.1 > 0 > -0)
    assert recall_at_k(emb, pairs, k=1) == pytest.approx(2 / 3)
    # without excluding itself, item 1's top-1 is item 1 and item 3's top-1 is item 3
    assert recall_at_k(emb, pairs, k=1, exclude_self=False) == 0.0


# -- errors -------------------------------------------------------------------------------------
def test_unfitted_transform_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        QARMAligner().transform(np.zeros((3, 2), np.float32))


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"dim_out": 0}, "dim_out"),
        ({"hidden": -1}, "hidden"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"batch_size": 1}, "batch_size"),
        ({"epochs": 1.5}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"symmetric": 1}, "symmetric"),
    ],
)
def test_bad_config_names_the_parameter(kwargs: dict, param: str) -> None:
    with pytest.raises(ValueError, match=f"The '{param}' parameter of AlignConfig"):
        AlignConfig(**kwargs)


def test_bad_inputs_raise_clear_errors() -> None:
    content, pairs = make_task(n=50)
    with pytest.raises(TypeError, match="AlignConfig"):
        QARMAligner({"dim_out": 4}).fit(content, pairs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(N\+1, D\)"):
        QARMAligner().fit(content[:, 0], pairs)
    bad = content.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        QARMAligner().fit(bad, pairs)
    with pytest.raises(ValueError, match=r"items 1\.\.30"):
        QARMAligner().fit(content[:31], pairs)
    with pytest.raises(TypeError, match="Pairs"):
        QARMAligner().fit(content, (pairs.trigger, pairs.target))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        QARMAligner().fit(content, pairs.subset(np.zeros(len(pairs), bool)))
    aligner = QARMAligner(AlignConfig(dim_out=4, epochs=1, batch_size=32)).fit(content, pairs)
    with pytest.raises(ValueError, match="D=32 but got D=31"):
        aligner.transform(content[:, :31])
    with pytest.raises(ValueError, match="The 'k' parameter of recall_at_k"):
        recall_at_k(content, pairs, k=0)


def test_recall_at_k_breaks_exact_ties_by_item_id() -> None:
    """Items 2..5 share one embedding: the lowest ids win, whatever order faiss returns them in."""
    rng = np.random.default_rng(0)
    emb = 0.1 * rng.standard_normal((41, 6)).astype(np.float32)
    emb[2:6] = emb[1] = [1, 2, 3, 0, 0, 1]  # four rows identical to item 1, the closest to it
    pairs = Pairs(np.full(4, 1), np.arange(2, 6), np.ones(4, np.float32), "ties")
    assert recall_at_k(emb, pairs, k=2) == 0.5  # items 2 and 3
    for _ in range(3):
        assert recall_at_k(emb, pairs, k=3) == 0.75
