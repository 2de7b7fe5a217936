"""ELASTIC retriever: shapes, exact causality, padding invariance, incremental == full recompute,
fast == reference, training, save/load, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seq_helpers import learn_successor
from shortlist.data.batches import EvalBatch
from shortlist.models import build_model, load_model

SMALL = {
    "num_items": 30,
    "max_len": 12,
    "dim": 16,
    "num_heads": 2,
    "num_experts": 3,
    "dropout": 0.0,
}


def _model(**kw: object):
    torch.manual_seed(0)
    return build_model("elastic", **{**SMALL, "chunk_size": 4, **kw}).eval()


@pytest.mark.parametrize("memory_size", [0, 16])
def test_shapes_and_zero_padding(memory_size: int) -> None:
    m = _model(memory_size=memory_size)
    ids = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0] * 10 + [7, 8]])
    h = m.encode(ids)
    assert h.shape == (2, 12, 16)
    assert torch.all(h[ids == 0] == 0) and torch.all(h[ids > 0].abs().sum(-1) > 0)


@pytest.mark.parametrize(("memory_size", "local_window"), [(0, 0), (16, 0), (0, 3), (16, 5)])
@pytest.mark.parametrize("t", [2, 5, 11])
def test_exact_causality(memory_size: int, local_window: int, t: int) -> None:
    _assert_exactly_causal(_model(memory_size=memory_size, local_window=local_window), t)


def _assert_exactly_causal(m: torch.nn.Module, t: int) -> None:
    """Changing the event at t leaves every earlier state bitwise equal and changes state t."""
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    changed = ids.clone()
    changed[0, t] = 20
    a, b = m.encode(ids), m.encode(changed)
    assert torch.equal(a[0, :t], b[0, :t])  # bitwise: no position sees a later event
    assert (a[0, t] - b[0, t]).abs().amax() > 1e-3


@pytest.mark.parametrize("position_from", ["newest", "none"])
def test_position_options_are_causal_and_pad_invariant(position_from: str) -> None:
    m = _model(local_window=2, position_from=position_from)
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    changed = ids.clone()
    changed[0, 7] = 20
    a, b = m.encode(ids), m.encode(changed)
    assert torch.equal(a[0, :7], b[0, :7]) and (a[0, 7] - b[0, 7]).abs().amax() > 1e-3
    padded, unpadded = torch.tensor([[0, 0, 3, 4, 5]]), torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(m.encode(padded)[0, -3:], m.encode(unpadded)[0])
    ref = _model(local_window=2, position_from=position_from, impl="reference")
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(m.encode(ids), ref.encode(ids), atol=2e-5, rtol=1e-4)
    # the position table is the only difference between the options
    assert (m.pos_emb is None) == (position_from == "none")


def test_positions_from_newest_match_sasrec_s_convention() -> None:
    m = _model(position_from="newest")
    torch.nn.init.zeros_(m.item_emb.weight)  # inputs are the position embeddings alone
    m.blocks = torch.nn.ModuleList()  # no mixing: the states are LN(positions)
    h = m.encode(torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 5, 6]]))
    expected = m.ln(m.pos_emb.weight[-3:])  # the latest event takes position max_len - 1
    torch.testing.assert_close(h[0, -3:], expected)


def test_padding_invariance_and_independent_rows() -> None:
    m = _model(memory_size=16)
    short = torch.tensor([[0, 3, 4, 5]])
    long = torch.tensor([[0] * 9 + [3, 4, 5]])
    torch.testing.assert_close(m.encode(short)[0, -3:], m.encode(long)[0, -3:])
    other = torch.tensor([[0, 0, 0, 0, 0, 9, 7, 8, 1, 2, 3, 4]])
    both = m.encode(torch.cat([long, other]))
    torch.testing.assert_close(both[0], m.encode(long)[0])
    torch.testing.assert_close(both[1], m.encode(other)[0])


@pytest.mark.parametrize(("memory_size", "local_window"), [(0, 0), (16, 0), (0, 4), (16, 20)])
def test_fast_equals_reference(memory_size: int, local_window: int) -> None:
    fast = _model(memory_size=memory_size, local_window=local_window)
    ref = _model(memory_size=memory_size, impl="reference", local_window=local_window)
    ref.load_state_dict(fast.state_dict())
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [0] * 7 + [1, 2, 3, 4, 5]])
    torch.testing.assert_close(fast.encode(ids), ref.encode(ids), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(("memory_size", "local_window"), [(0, 0), (16, 0), (0, 3), (16, 1)])
def test_incremental_equals_full_recompute(memory_size: int, local_window: int) -> None:
    m = _model(memory_size=memory_size, local_window=local_window)
    ids = torch.tensor(
        [[0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
    )
    full = m.encode(ids)
    state = m.init_state(2)
    hidden = []
    for t in range(ids.shape[1]):
        out = m.step(state, ids[:, t])
        state, _ = out.state, hidden.append(out.hidden)
    torch.testing.assert_close(torch.stack(hidden, 1), full, atol=1e-5, rtol=1e-4)
    assert state.positions.tolist() == [9, 12]
    with pytest.raises(ValueError, match="max_len=12 entries"):
        m.step(state, torch.tensor([1, 1]))


def test_incremental_without_positions_and_refused_from_newest() -> None:
    m = _model(local_window=3, position_from="none")
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    state, hidden = m.init_state(1), []
    for t in range(ids.shape[1]):
        out = m.step(state, ids[:, t])
        state, _ = out.state, hidden.append(out.hidden)
    torch.testing.assert_close(torch.stack(hidden, 1), m.encode(ids), atol=1e-5, rtol=1e-4)
    newest = _model(position_from="newest")
    with pytest.raises(ValueError, match=r"position_from 'oldest' or 'none'.*encode"):
        newest.step(newest.init_state(1), torch.tensor([3]))


@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
def test_training_learns_a_pattern(loss: str) -> None:
    torch.manual_seed(0)
    m = build_model(
        "elastic", num_items=12, max_len=6, dim=32, num_heads=2, num_experts=4, chunk_size=4,
        memory_size=16, dropout=0.0, loss=loss, num_negatives=6,
    )  # fmt: skip
    hit, first, last = learn_successor(m, length=6, steps=150)
    assert hit > 0.9 and last < first / 3


def test_save_load_round_trip(tmp_path: Path) -> None:
    m = _model(memory_size=16, product_keys=False, loss="sampled_softmax", normalize=True)
    m.save_pretrained(tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    assert type(again) is type(m) and again.config == m.config
    ev = EvalBatch(
        history=torch.tensor([[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]]), target=torch.tensor([9]),
        user_ids=torch.tensor([0]), lengths=torch.tensor([8]),
    )  # fmt: skip
    torch.testing.assert_close(again.score_all(ev), m.score_all(ev))
    top = m.recommend(ev, 5, exclude=ev.history)
    assert not set(top.ids[0].tolist()) & {0, 1, 2, 3, 4, 5, 6, 7, 8}


def test_config_errors() -> None:
    with pytest.raises(
        ValueError, match=r"'dim' parameter of ElasticConfig \(10\) .* num_heads \(3\)"
    ):
        build_model("elastic", num_items=5, dim=10, num_heads=3)
    with pytest.raises(ValueError, match=r"'memory_size' .* perfect square .* memory_size=20"):
        build_model("elastic", num_items=5, memory_size=20)
    with pytest.raises(
        ValueError,
        match=r"'memory_topk' parameter of ElasticConfig \(5\) must be <= memory_size \(4\)",
    ):
        build_model("elastic", num_items=5, memory_size=4, memory_topk=5)
    with pytest.raises(
        ValueError, match=r"'num_experts' parameter of ElasticConfig must be an int >= 1. Got 0"
    ):
        build_model("elastic", num_items=5, num_experts=0)
    with pytest.raises(
        ValueError, match=r"'local_window' parameter of ElasticConfig must be an int >= 0. Got -1"
    ):
        build_model("elastic", num_items=5, local_window=-1)
    with pytest.raises(ValueError, match=r"'local_window' .* impl='triton' has no local window"):
        build_model("elastic", num_items=5, local_window=4, impl="triton")
    with pytest.raises(
        ValueError, match=r"'position_from' .* one of \['oldest', 'newest', 'none'\]"
    ):
        build_model("elastic", num_items=5, position_from="latest")
    with pytest.raises(ValueError, match="exceed ELASTIC's max_len=12"):
        _model().encode(torch.ones(1, 13, dtype=torch.long))
    build_model("elastic", num_items=5, memory_size=20, product_keys=False)  # flat keys: any M


def test_absolute_positions_by_hand() -> None:
    from shortlist.models.next_item import absolute_positions

    valid = torch.tensor([[False, True, True, True], [True, True, False, False]])
    # oldest: 0 at the first real event; padding clamped to 0 (callers zero it)
    assert absolute_positions(valid, 8, "oldest").tolist() == [[0, 0, 1, 2], [0, 1, 1, 1]]
    # newest: the latest real event takes max_len - 1, whatever the padding side
    assert absolute_positions(valid, 8, "newest").tolist() == [[5, 5, 6, 7], [6, 7, 7, 7]]
    with pytest.raises(ValueError, match=r"'oldest' or 'newest'\. Got 'none' instead"):
        absolute_positions(valid, 8, "none")


# -- hybrid: every full_every-th block is full causal attention (as KSA's hybrid) ----------------


@pytest.mark.parametrize(("full_every", "local_window"), [(2, 0), (1, 0), (2, 3)])
@pytest.mark.parametrize("t", [2, 7, 11])
def test_hybrid_is_exactly_causal_and_pad_invariant(
    full_every: int, local_window: int, t: int
) -> None:
    m = _model(full_every=full_every, local_window=local_window, memory_size=16)
    kinds = [type(b).__name__ for b in m.blocks]
    assert kinds == (
        ["ElasticBlock", "ElasticFullBlock"] if full_every == 2 else ["ElasticFullBlock"] * 2
    )
    _assert_exactly_causal(m, t)
    # padding is never attended: the same events left-padded more or less give the same states
    short, long = torch.tensor([[0, 3, 4, 5]]), torch.tensor([[0] * 9 + [3, 4, 5]])
    torch.testing.assert_close(m.encode(short)[0, -3:], m.encode(long)[0, -3:])
    assert torch.all(m.encode(long)[0, :9] == 0)


def test_hybrid_full_block_is_causal_attention_by_hand() -> None:
    """The full block's attention equals explicit masked softmax attention over the row's real
    events (no padding), computed here from the layer's own projections."""
    m = _model(full_every=1, num_layers=1)
    block = m.blocks[0]
    x = torch.randn(1, 5, 16)
    valid = torch.tensor([[False, False, True, True, True]])
    x = x * valid[..., None]
    h = block.ln1(x[:, 2:])  # the three real events, oldest first
    q, k, v = block.attn.qkv(h).view(1, 3, 3, 2, 8).permute(2, 0, 3, 1, 4)  # (B, H, 3, dh)
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    scores = scores.masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
    attn = block.attn.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 3, 16))
    after = x[:, 2:] + attn
    expected = after + block.ffn(block.ln2(after))
    torch.testing.assert_close(block(x, valid, None)[:, 2:], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("full_every", "local_window", "memory_size"), [(2, 0, 0), (1, 0, 16), (2, 3, 16)]
)
def test_hybrid_incremental_equals_full_recompute(
    full_every: int, local_window: int, memory_size: int
) -> None:
    """Rows that start at different steps (leading padding = skipped steps): the full layers'
    KV caches keep skipped steps masked."""
    m = _model(full_every=full_every, local_window=local_window, memory_size=memory_size)
    ids = torch.tensor(
        [[0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
    )
    state, hidden = m.init_state(2), []
    for t in range(ids.shape[1]):
        out = m.step(state, ids[:, t])
        state, _ = out.state, hidden.append(out.hidden)
    torch.testing.assert_close(torch.stack(hidden, 1), m.encode(ids), atol=1e-5, rtol=1e-4)
    caches = [s for s in state.layers if hasattr(s, "keys")]
    assert len(caches) == sum(type(b).__name__ == "ElasticFullBlock" for b in m.blocks) > 0
    assert caches[0].keys.shape == (2, 2, 12, 8)
    assert caches[0].valid.sum(1).tolist() == [9, 12]


def test_hybrid_config_error_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"'full_every' parameter of ElasticConfig must be an int >= 0. Got -1"
    ):
        build_model("elastic", num_items=5, full_every=-1)
    m = _model(full_every=2)
    m.save_pretrained(tmp_path / "hybrid")
    back = load_model(tmp_path / "hybrid").eval()
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    torch.testing.assert_close(back.encode(ids), m.encode(ids))
    assert back.config.full_every == 2
