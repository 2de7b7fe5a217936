"""Tests of shortlist.items.semantic_ids: collision handling by an extra level, lookups, the prefix
trie against brute force, constrained greedy decoding, hand-computed metrics, flat tokens and the
save/load round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.items.quantizers import ResidualKMeans
from shortlist.items.semantic_ids import CODES_FILE, META_FILE, PAD, SemanticIds


def test_collisions_get_an_extra_level_in_item_order() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [2, 2]])
    sids = SemanticIds.from_codes(codes, codebook_size=4)
    assert sids.codes_.shape == (6, 3)
    assert (sids.codes_[0] == PAD).all()
    np.testing.assert_array_equal(sids.codes_[1:, :2], codes)
    np.testing.assert_array_equal(sids.codes_[1:, 2], [0, 1, 0, 2, 0])
    assert sids.codebook_sizes == (4, 4, 3)
    assert sids.n_levels == 2 and sids.width == 3 and len(sids) == 5
    # every item now has its own code
    assert np.unique(sids.codes_[1:], axis=0).shape[0] == 5
    for item in range(1, 6):
        assert sids.item_of(sids.codes_[item]) == item


def test_lookups_and_their_errors() -> None:
    sids = SemanticIds.from_codes(np.array([[0, 1], [0, 1], [2, 3]]), codebook_size=4)
    assert sids.item_of((0, 1, 1)) == 2
    np.testing.assert_array_equal(sids.items_of((0, 1)), [1, 2])
    np.testing.assert_array_equal(sids.items_of(()), [1, 2, 3])
    assert sids.items_of((3,)).size == 0
    with pytest.raises(KeyError, match=r"No item has the code \(0, 1, 2\)"):
        sids.item_of((0, 1, 2))
    with pytest.raises(ValueError, match="A full code has 3 positions, got 2"):
        sids.item_of((0, 1))
    with pytest.raises(TypeError, match="1-d sequence of ints"):
        sids.allowed_next((0.5,))
    assert sids.is_valid((2, 3, 0)) and not sids.is_valid((2, 3, 1)) and not sids.is_valid((2, 3))


def test_without_dedup_shared_codes_are_ambiguous() -> None:
    sids = SemanticIds.from_codes(np.array([[0, 1], [0, 1], [2, 3]]), dedup=False)
    assert sids.codes_.shape == (4, 2) and sids.codebook_sizes == (3, 4)
    assert sids.item_of((2, 3)) == 3
    with pytest.raises(ValueError, match=r"shared by items \[1, 2\]"):
        sids.item_of((0, 1))
    np.testing.assert_array_equal(sids.allowed_next((0,)), [1])


def test_from_codes_validates_its_input() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        SemanticIds.from_codes(np.array([[0, -1]]))
    with pytest.raises(TypeError, match="integer codes"):
        SemanticIds.from_codes(np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"non-empty \(N, L\) array"):
        SemanticIds.from_codes(np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"Code 5 of item 2 at position 1 is outside \[0, 4\)"):
        SemanticIds.from_codes(np.array([[0, 1], [1, 5]]), codebook_size=4)
    with pytest.raises(ValueError, match="2 levels but 3 codebook sizes"):
        SemanticIds.from_codes(np.array([[0, 1]]), codebook_size=[4, 4, 4])


# -- the trie ------------------------------------------------------------------------------------
def brute_next(codes: np.ndarray, prefix: tuple[int, ...]) -> list[int]:
    p = len(prefix)
    if p >= codes.shape[1]:
        return []
    rows = codes[(codes[:, :p] == np.asarray(prefix, dtype=np.int64)).all(1)] if p else codes
    return sorted(set(rows[:, p].tolist()))


code_tables = st.integers(1, 4).flatmap(
    lambda L: st.lists(st.lists(st.integers(0, 3), min_size=L, max_size=L), min_size=1, max_size=30)
)


@settings(max_examples=60, deadline=None)
@given(rows=code_tables, dedup=st.booleans(), probe=st.lists(st.integers(-1, 4), max_size=5))
def test_allowed_next_matches_brute_force(
    rows: list[list[int]], dedup: bool, probe: list[int]
) -> None:
    sids = SemanticIds.from_codes(np.array(rows), dedup=dedup)
    codes = sids.codes_[1:]
    # every prefix of every real code, and an arbitrary (mostly invalid) probe
    prefixes = {tuple(int(v) for v in row[:p]) for row in codes for p in range(codes.shape[1] + 1)}
    prefixes.add(tuple(probe))
    for prefix in prefixes:
        got = sids.allowed_next(prefix)
        assert got.dtype == np.int64
        assert got.tolist() == brute_next(codes, prefix), prefix


@settings(max_examples=40, deadline=None)
@given(rows=code_tables, seed=st.integers(0, 10_000))
def test_greedy_constrained_decoding_always_ends_at_a_real_item(
    rows: list[list[int]], seed: int
) -> None:
    """A 'model' with random scores over every token, restricted to ``allowed_next``."""
    sids = SemanticIds.from_codes(np.array(rows), codebook_size=4)
    rng = np.random.default_rng(seed)
    prefix: list[int] = []
    while (allowed := sids.allowed_next(prefix)).size:
        scores = rng.normal(size=max(sids.codebook_sizes))
        prefix.append(int(allowed[np.argmax(scores[allowed])]))
    assert len(prefix) == sids.width
    item = sids.item_of(prefix)
    assert 1 <= item <= sids.n_items
    np.testing.assert_array_equal(sids.codes_[item], prefix)


def test_every_full_code_is_reachable_through_the_trie() -> None:
    rng = np.random.default_rng(0)
    sids = SemanticIds.from_codes(rng.integers(0, 8, size=(500, 3)), codebook_size=8)
    for item in range(1, sids.n_items + 1):
        code = sids.codes_[item]
        for p in range(sids.width):
            assert code[p] in sids.allowed_next(code[:p])
        assert sids.allowed_next(code).size == 0
    assert sids.allowed_next((9,)).size == 0  # outside the codebook
    assert sids.allowed_next((0, 0, 0, 0, 0)).size == 0  # longer than a code


# -- metrics -------------------------------------------------------------------------------------
def test_metrics_match_hand_computed_values() -> None:
    codes = np.array([[0, 0], [0, 1], [0, 1], [3, 2]])
    m = SemanticIds.from_codes(codes, codebook_size=4).metrics()
    assert m.n_items == 4 and m.n_levels == 2 and m.codebook_sizes == (4, 4)
    assert m.utilisation == (0.5, 0.75)  # codes {0, 3} and {0, 1, 2} of 4
    h0 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert m.entropy_bits[0] == pytest.approx(h0)
    assert m.entropy_bits[1] == pytest.approx(1.5)  # p = 1/4, 1/2, 1/4
    assert m.collision_rate == 0.5  # items 2 and 3 share (0, 1)
    assert m.n_unique_codes == 3 and m.max_items_per_code == 2
    assert m.mean_items_per_code == pytest.approx(4 / 3)
    assert m.reconstruction_error is None
    # the extra level does not change the metrics of the quantizer's levels
    assert SemanticIds.from_codes(codes, codebook_size=4, dedup=False).metrics() == m


def test_metrics_reconstruction_error_uses_the_quantizer() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    rq = ResidualKMeans(2, 8).fit(X)
    sids = SemanticIds.from_quantizer(rq, X)
    m = sids.metrics(rq, X)
    assert m.reconstruction_error == pytest.approx(rq.reconstruction_error(X), rel=1e-5)
    total = float((X.astype(np.float64) ** 2).sum(1).mean())
    assert m.relative_reconstruction_error == pytest.approx(
        m.reconstruction_error / total, rel=1e-5
    )
    with pytest.raises(ValueError, match="give both quantizer and X"):
        sids.metrics(rq)
    with pytest.raises(ValueError, match="X has 10 rows but the table has 200 items"):
        sids.metrics(rq, X[:10])


def test_tokens_form_one_vocabulary_with_padding_zero() -> None:
    sids = SemanticIds.from_codes(np.array([[0, 1], [0, 1], [2, 3]]), codebook_size=4)
    tokens = sids.tokens()
    assert sids.vocab_size == 1 + 4 + 4 + 2
    assert (tokens[0] == 0).all()
    np.testing.assert_array_equal(tokens[1:], [[1, 6, 9], [1, 6, 10], [3, 8, 9]])
    assert tokens.max() < sids.vocab_size


# -- persistence ---------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sids = SemanticIds.from_codes(rng.integers(0, 16, size=(300, 3)), codebook_size=16)
    folder = sids.save(tmp_path / "sids")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [CODES_FILE, META_FILE]
    )  # no temp files
    back = SemanticIds.load(folder)
    np.testing.assert_array_equal(back.codes_, sids.codes_)
    assert back.codebook_sizes == sids.codebook_sizes
    assert (back.n_levels, back.dedup) == (3, True)
    assert back.metrics() == sids.metrics()
    assert (
        back.allowed_next(sids.codes_[5][:2]).tolist()
        == sids.allowed_next(sids.codes_[5][:2]).tolist()
    )
    # saving again over the folder replaces both files
    SemanticIds.from_codes(np.array([[1, 2]]), codebook_size=4).save(folder)
    assert SemanticIds.load(folder).n_items == 1


def test_load_detects_missing_and_mismatched_files(tmp_path: Path) -> None:
    sids = SemanticIds.from_codes(np.array([[0, 1], [2, 3]]), codebook_size=4)
    folder = sids.save(tmp_path / "a")
    other = SemanticIds.from_codes(np.array([[1, 1], [2, 2]]), codebook_size=4).save(tmp_path / "b")
    (folder / CODES_FILE).write_bytes((other / CODES_FILE).read_bytes())
    with pytest.raises(ValueError, match="does not match the checksum"):
        SemanticIds.load(folder)
    meta = json.loads((other / META_FILE).read_text())
    meta["version"] = 99
    (other / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="version 99"):
        SemanticIds.load(other)
    with pytest.raises(FileNotFoundError, match=r"not a folder written by SemanticIds\.save"):
        SemanticIds.load(tmp_path / "missing")
