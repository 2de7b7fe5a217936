"""KSA retriever: exact causality (KSA and hybrid layers), padding invariance, implementations agree,
incremental inference equals a full recompute across chunk boundaries, cache sizes, save/load."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq_helpers import learn_successor
from shortlist.data.batches import EvalBatch
from shortlist.models import build_model, load_model
from shortlist.models.ksa import KSA
from shortlist.models.ksa_cache import KSACache


def _model(dtype: torch.dtype = torch.float64, **kw: object) -> KSA:
    torch.manual_seed(0)
    cfg = {
        "num_items": 40,
        "max_len": 64,
        "dim": 16,
        "num_heads": 2,
        "num_layers": 3,
        "dropout": 0.0,
    }
    cfg.update({"chunk_size": 3, "window": 1, "full_every": 3})
    cfg.update(kw)
    m = build_model("ksa", **cfg)
    assert isinstance(m, KSA)
    return m.to(dtype).eval()


@pytest.mark.parametrize("full_every", [0, 1, 2])  # all KSA, all full, hybrid
def test_exact_causality(full_every: int) -> None:
    m = _model(full_every=full_every, chunk_size=2, window=1, num_layers=2)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 41, (2, 23), generator=gen)
    ids[1, :5] = 0  # a left-padded row
    base = m.encode(ids)
    for t in (5, 9, 14, 22):  # every position is a real event in both rows
        changed = ids.clone()
        changed[:, t] = ids[:, t] % 40 + 1
        out = m.encode(changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=0)
        assert not torch.allclose(out[:, t], base[:, t])
        if t < 22:  # later positions do depend on it (no test that cannot fail)
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


def test_summaries_carry_old_chunks() -> None:
    # with W = 0 and k = 2, event 9 sees events 8, 9 as text and chunks 0..3 only via summaries.
    # A summary's layer-l keys come from its layer-l input, so chunk content reaches them from
    # the second layer on: one layer sees nothing of the old chunks, two layers do.
    one = _model(chunk_size=2, window=0, full_every=0, num_layers=1)
    ids = torch.arange(1, 11)[None]
    changed = ids.clone()
    changed[0, 0] = 30
    torch.testing.assert_close(one.encode(ids)[0, 9], one.encode(changed)[0, 9], rtol=0, atol=0)
    m = _model(chunk_size=2, window=0, full_every=0, num_layers=2)
    diff = (m.encode(ids)[0, 9] - m.encode(changed)[0, 9]).abs().max().item()
    assert diff > 1e-9  # small (std 0.02 init) but far above float64 rounding


def test_padding_invariance_and_independent_rows() -> None:
    m = _model()
    short = torch.tensor([[0, 3, 4, 5, 6, 7, 8, 9]])
    long = torch.cat((torch.zeros(1, 6, dtype=torch.long), short[:, 1:]), 1)
    torch.testing.assert_close(m.encode(short)[0, -7:], m.encode(long)[0, -7:])
    both = m.encode(torch.cat((long, torch.arange(1, 14)[None]), 0))
    torch.testing.assert_close(both[0], m.encode(long)[0])
    assert torch.all(both[0, :6] == 0)


@pytest.mark.parametrize(
    ("impl", "flex_block"), [("blocked", 128), ("banded", 128), ("flex", 128), ("flex", 16)]
)
def test_implementations_agree(impl: str, flex_block: int) -> None:
    ids = torch.randint(1, 41, (2, 31), generator=torch.Generator().manual_seed(2))
    ids[0, :4] = 0
    ref = _model(attention_impl="reference", dtype=torch.float32)
    fast = _model(attention_impl=impl, flex_block=flex_block, dtype=torch.float32)
    assert all(b.attn.flex_block == flex_block for b in fast.blocks)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager FlexAttention on CPU warns
        out = fast.encode(ids)  # (eager FlexAttention has no backward on CPU)
    torch.testing.assert_close(out, ref.encode(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("full_every", "chunk", "window", "prefix"),
    [(0, 3, 1, 0), (3, 3, 1, 5), (2, 4, 2, 8), (1, 2, 1, 3), (0, 1, 0, 2)],
)
def test_incremental_equals_full_recompute(
    full_every: int, chunk: int, window: int, prefix: int
) -> None:
    m = _model(full_every=full_every, chunk_size=chunk, window=window)
    ids = torch.randint(1, 41, (2, 26), generator=torch.Generator().manual_seed(3))
    full = m.encode(ids)  # (2, 26, D)
    cache = KSACache(m, batch_size=2)
    parts = []
    if prefix:
        parts.append(cache.prefill(ids[:, :prefix]))
    for lo, hi in ((prefix, prefix + 1), (prefix + 1, prefix + 7), (prefix + 7, 26)):  # odd groups
        parts.append(cache.append(ids[:, lo:hi]))
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-9, atol=1e-9)
    assert cache.num_events == 26


def test_prefill_equals_encode_and_float32_parity() -> None:
    m = _model(dtype=torch.float32)
    ids = torch.randint(1, 41, (1, 40), generator=torch.Generator().manual_seed(4))
    cache = KSACache(m)
    torch.testing.assert_close(
        cache.prefill(ids[:, :20]), m.encode(ids[:, :20]), rtol=1e-5, atol=1e-5
    )
    last = cache.append(ids[:, 20:])[:, -1]
    torch.testing.assert_close(last, m.encode(ids)[:, -1], rtol=1e-5, atol=1e-5)


def test_cache_sizes() -> None:
    # 3 layers, hybrid: layers 0, 1 KSA (ring (W+1)*k = 6, one summary per completed chunk), 2 full
    m = _model(chunk_size=3, window=1, full_every=3)
    cache = KSACache(m)
    cache.append(torch.randint(1, 41, (1, 20)))
    assert cache.entries_per_layer() == [6 + 6, 6 + 6, 20]
    assert cache.entries() == 44
    assert cache.nbytes() == 44 * 2 * 16 * 8  # K and V, dim 16, float64
    big = KSACache(m)
    big.fill_random_(100_000)
    ksa_layer = big.entries_per_layer()[0]
    assert ksa_layer == 6 + 33_333
    assert 2.9 < 100_000 / ksa_layer <= 3.0  # ratio vs a full layer -> k for large n
    with pytest.raises(ValueError, match="needs an empty cache"):
        big.prefill(torch.ones(1, 3, dtype=torch.long))


def test_cache_errors() -> None:
    m = _model()
    with pytest.raises(
        ValueError, match=r"shape \(2, T\) without padding .* Got shape \(2, 3\) with 1 ids <= 0"
    ):
        KSACache(m, batch_size=2).append(torch.tensor([[1, 2, 3], [0, 4, 5]]))
    m.train()
    with pytest.raises(ValueError, match="eval mode"):
        KSACache(m).append(torch.tensor([[1]]))
    with pytest.raises(TypeError, match=r"KSACache needs a KSA model\. Got SASRec"):
        KSACache(build_model("sasrec", num_items=5))  # type: ignore[arg-type]


def test_training_learns_a_pattern() -> None:
    torch.manual_seed(0)
    m = build_model(
        "ksa", num_items=12, max_len=10, dim=32, num_heads=2, dropout=0.0, chunk_size=2, window=1
    )
    hit, first, last = learn_successor(m, length=10, steps=100)
    assert hit > 0.9 and last < first / 3


def test_save_load_round_trip(tmp_path: Path) -> None:
    m = _model(dtype=torch.float32, loss="sampled_softmax", normalize=True, temperature=0.1)
    m.save_pretrained(tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    assert type(again) is KSA and again.config == m.config
    ev = EvalBatch(
        history=torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6, 7, 8]]),
        target=torch.tensor([9]),
        user_ids=torch.tensor([0]),
        lengths=torch.tensor([8]),
    )
    torch.testing.assert_close(again.score_all(ev), m.score_all(ev))


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"'flex_block' parameter of KSAConfig .* Got 100"):
        build_model("ksa", num_items=5, flex_block=100)
    with pytest.raises(ValueError, match=r"'flex_span' parameter of KSAConfig must be an int >= 1"):
        build_model("ksa", num_items=5, flex_span=0)
    with pytest.raises(ValueError, match=r"'dim' parameter of KSAConfig \(12\) .* even head width"):
        build_model("ksa", num_items=5, dim=12, num_heads=4)
    with pytest.raises(
        ValueError, match=r"'chunk_size' parameter of KSAConfig must be an int >= 1. Got 0"
    ):
        build_model("ksa", num_items=5, chunk_size=0)
    with pytest.raises(ValueError, match=r"'attention_impl' parameter of KSAConfig must be one of"):
        build_model("ksa", num_items=5, attention_impl="triton")


@settings(max_examples=15, deadline=None)
@given(
    chunk=st.integers(1, 5),
    window=st.integers(0, 3),
    full_every=st.integers(0, 3),
    n=st.integers(1, 30),
    prefix_frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_incremental_equals_full_recompute_random(
    chunk: int, window: int, full_every: int, n: int, prefix_frac: float, seed: int
) -> None:
    m = _model(full_every=full_every, chunk_size=chunk, window=window, num_layers=2)
    ids = torch.randint(1, 41, (1, n), generator=torch.Generator().manual_seed(seed))
    cache = KSACache(m)
    prefix = int(prefix_frac * n)
    parts = [cache.prefill(ids[:, :prefix])] if prefix else []
    if prefix < n:
        parts.append(cache.append(ids[:, prefix:]))
    torch.testing.assert_close(torch.cat(parts, 1), m.encode(ids), rtol=1e-9, atol=1e-9)
    ksa_entries = (window + 1) * chunk + n // chunk
    expected = [n if m.config.is_full_layer(i) else ksa_entries for i in range(2)]
    assert cache.entries_per_layer() == expected
