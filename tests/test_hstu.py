"""HSTU retriever: shapes, causality, padding, the time bias, the pointwise attention against a
naive loop, save/load, recommend, learning a toy task, config validation, bf16 autocast."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.data.batches import EvalBatch, SequenceBatch
from shortlist.models import MODELS, build_model, load_model
from shortlist.models.hstu import (
    HSTU,
    HSTUConfig,
    HSTULayer,
    bucketize_time_gaps,
    relative_positions,
    table_lookup,
)

N_ITEMS = 30
TINY = {
    "num_items": N_ITEMS,
    "max_len": 12,
    "dim": 16,
    "num_layers": 2,
    "num_heads": 2,
    "dqk": 6,
    "dv": 5,
}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny matrices gain nothing from threads, and on a busy machine they wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**overrides: object) -> HSTU:
    torch.manual_seed(0)
    model = build_model("hstu", **{**TINY, **overrides})
    assert isinstance(model, HSTU)
    return model.eval()


def random_rows(
    B: int, L: int, lengths: list[int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, L) ids in 1..N and increasing timestamps (seconds, 0 at padding)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, N_ITEMS + 1, (B, L), generator=g)
    gaps = torch.randint(1, 10**6, (B, L), generator=g)
    ts = 978_300_000 + gaps.cumsum(1)
    for b, n in enumerate(lengths):
        ids[b, : L - n] = 0
        ts[b, : L - n] = 0
    return ids, ts


def eval_batch(ids: torch.Tensor, ts: torch.Tensor | None = None) -> EvalBatch:
    B = ids.shape[0]
    return EvalBatch(
        history=ids,
        target=torch.ones(B, dtype=torch.long),
        user_ids=torch.arange(B),
        lengths=(ids > 0).sum(1),
        timestamps=ts,
    )


def sequence_batch(
    ids: torch.Tensor, ts: torch.Tensor | None = None, seed: int = 1
) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    targets = torch.where(ids > 0, torch.randint(1, N_ITEMS + 1, ids.shape, generator=g), 0)
    return SequenceBatch(
        input_ids=ids,
        target_ids=targets,
        lengths=(ids > 0).sum(1),
        user_ids=torch.arange(ids.shape[0]),
        timestamps=ts,
    )


# -- shapes and the interface --------------------------------------------------------------------
def test_registered_and_shapes() -> None:
    assert MODELS.get("hstu") is HSTU
    model = tiny()
    ids, ts = random_rows(3, 10, [10, 4, 1])
    h = model.encode(ids, ts)
    assert h.shape == (3, 10, 16)
    assert torch.all(h[1, :6] == 0) and torch.all(h[2, :9] == 0)  # padding states are zero
    torch.testing.assert_close(h[ids > 0].norm(dim=-1), torch.ones(int((ids > 0).sum())))
    batch = eval_batch(ids, ts)
    assert model.user_states(batch).shape == (3, 16)
    assert model.item_table().shape == (N_ITEMS + 1, 16)
    scores = model.score_all(batch)
    assert scores.shape == (3, N_ITEMS + 1)
    assert torch.all(scores[:, 0] == float("-inf"))
    assert torch.all(scores[:, 1:].abs() <= 1 + 1e-5)  # cosine similarities


@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
@pytest.mark.parametrize("with_time", [True, False])
def test_loss_is_finite_and_reaches_every_parameter(loss: str, with_time: bool) -> None:
    model = tiny(loss=loss, num_negatives=16).train()
    ids, ts = random_rows(4, 12, [12, 7, 3, 2])
    out = model.compute_loss(sequence_batch(ids, ts if with_time else None))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.metrics["positions"] == 24
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.endswith("time_bias") and not with_time:
            assert p.grad is None or torch.all(p.grad == 0), name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


# -- causality, padding, time bias ---------------------------------------------------------------
@pytest.mark.parametrize("t", [3, 6, 9, 11])
def test_causal(t: int) -> None:
    model = tiny()
    ids, ts = random_rows(2, 12, [12, 9])
    before = model.encode(ids, ts)
    ids2, ts2 = ids.clone(), ts.clone()
    ids2[:, t] = ids[:, t] % N_ITEMS + 1  # another real item
    ts2[:, t:] += 12_345_678  # a later event time (and everything after it)
    after = model.encode(ids2, ts2)
    torch.testing.assert_close(after[:, :t], before[:, :t], rtol=0, atol=0)
    assert not torch.allclose(after[:, t], before[:, t])


@pytest.mark.parametrize("position_from", ["oldest", "newest"])
def test_padding_invariance(position_from: str) -> None:
    model = tiny(position_from=position_from)
    ids, ts = random_rows(3, 7, [7, 5, 2])
    short = model.user_states(eval_batch(ids, ts))
    pad = torch.zeros(3, 5, dtype=torch.long)
    long = model.user_states(eval_batch(torch.cat([pad, ids], 1), torch.cat([pad, ts], 1)))
    torch.testing.assert_close(long, short, rtol=1e-5, atol=1e-6)
    # every real position's state, too
    torch.testing.assert_close(
        model.encode(torch.cat([pad, ids], 1), torch.cat([pad, ts], 1))[:, 5:],
        model.encode(ids, ts),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("position_from", ["oldest", "newest"])
def test_right_padding_gives_the_same_user_state(position_from: str) -> None:
    model = tiny(position_from=position_from)
    ids, ts = random_rows(3, 8, [8, 5, 2])
    right_ids, right_ts = torch.zeros_like(ids), torch.zeros_like(ts)
    for b in range(3):
        n = int((ids[b] > 0).sum())
        right_ids[b, :n], right_ts[b, :n] = ids[b, -n:], ts[b, -n:]
    torch.testing.assert_close(
        model.user_states(eval_batch(right_ids, right_ts)),
        model.user_states(eval_batch(ids, ts)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_positions_from_the_newest_event() -> None:
    """``position_from="newest"``: the last event has position max_len - 1 at any length, as in
    SASRec; a row of max_len events has the same positions either way."""
    oldest, newest = tiny(), tiny(position_from="newest")
    newest.load_state_dict(oldest.state_dict())
    L = oldest.config.max_len
    ids, ts = random_rows(2, L, [L, 3])
    a, b = oldest.encode(ids, ts), newest.encode(ids, ts)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)  # full row: positions 0..L-1 both ways
    assert not torch.allclose(a[1, -3:], b[1, -3:])
    seen: list[torch.Tensor] = []
    hook = newest.pos_emb.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    newest.encode(ids, ts)
    hook.remove()
    assert seen[0][1, -3:].tolist() == [L - 3, L - 2, L - 1]


def test_empty_history_gives_zero_state() -> None:
    model = tiny()
    ids, ts = random_rows(2, 6, [0, 3])
    states = model.user_states(eval_batch(ids, ts))
    assert torch.all(states[0] == 0) and torch.isfinite(states).all()


def test_time_bias_used_only_when_enabled() -> None:
    ids, ts = random_rows(2, 10, [10, 6])
    ts_other = torch.where(ids > 0, ts[:, :1] + (ts - ts[:, :1]) * 37, 0)  # same order, longer gaps
    model = tiny(use_time_bias=True)
    assert not torch.allclose(model.encode(ids, ts), model.encode(ids, ts_other))
    assert not torch.allclose(model.encode(ids, ts), model.encode(ids))  # None: position bias only
    model = tiny(use_time_bias=False)
    torch.testing.assert_close(model.encode(ids, ts), model.encode(ids, ts_other), rtol=0, atol=0)
    torch.testing.assert_close(model.encode(ids, ts), model.encode(ids), rtol=0, atol=0)


def test_time_buckets_follow_the_official_formula() -> None:
    ts = torch.tensor([[0, 1, 2, 60, 86_400 + 60]])
    buckets = bucketize_time_gaps(ts, num_buckets=128)[0]
    assert buckets.shape == (5, 5)
    assert torch.all(buckets.diagonal() == 0) and torch.equal(buckets, buckets.T)
    assert buckets[1, 0] == 0  # |dt| = 1 -> ln 1 = 0
    assert buckets[2, 0] == math.floor(math.log(2) / 0.301)
    assert buckets[3, 0] == math.floor(math.log(60) / 0.301) == 13
    assert buckets[4, 3] == math.floor(math.log(86_400) / 0.301) == 37
    assert (
        bucketize_time_gaps(torch.tensor([[0, 10**12]]), num_buckets=20)[0, 1, 0] == 20
    )  # clamped


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_table_lookup_gradient_matches_indexing(deterministic: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    table = torch.randn(9, dtype=dtype, requires_grad=True)
    index = torch.randint(0, 9, (3, 5, 5))
    grad = torch.randn(3, 5, 5, dtype=dtype)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        out = table_lookup(table, index)
        (got,) = torch.autograd.grad(out, table, grad)
    finally:
        torch.use_deterministic_algorithms(before)
    assert torch.equal(out, table[index])
    exact = table.detach().double().requires_grad_()  # reference gradient, accumulated in float64
    (want,) = torch.autograd.grad(exact[index], exact, grad.double())
    assert got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


# -- the layer against a naive loop --------------------------------------------------------------
def naive_layer(
    layer: HSTULayer, x: torch.Tensor, ids: torch.Tensor, ts: torch.Tensor | None, n: float
) -> torch.Tensor:
    """HSTU layer written out position by position, head by head, key by key (float64)."""
    B, L, D = x.shape
    H, dqk, dv = layer.num_heads, layer.dqk, layer.dv
    W1 = layer.uvqk.detach().double()
    W2, b2 = layer.out.weight.detach().double(), layer.out.bias.detach().double()
    pos_w, time_w = layer.pos_bias.detach().double(), layer.time_bias.detach().double()
    T = time_w.numel() - 1

    def norm(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-6)

    def silu(z: torch.Tensor | float) -> torch.Tensor:
        z = torch.as_tensor(z, dtype=torch.float64)
        return z / (1 + torch.exp(-z))

    out = torch.zeros(B, L, D, dtype=torch.float64)
    for b in range(B):
        proj = [silu(norm(x[b, i].double()) @ W1) for i in range(L)]  # each (2H(dv+dqk),)
        u = [p[: H * dv] for p in proj]
        v = [p[H * dv : 2 * H * dv].reshape(H, dv) for p in proj]
        q = [p[2 * H * dv : 2 * H * dv + H * dqk].reshape(H, dqk) for p in proj]
        k = [p[2 * H * dv + H * dqk :].reshape(H, dqk) for p in proj]
        for i in range(L):
            if ids[b, i] == 0:
                continue
            heads = []
            for h in range(H):
                acc = torch.zeros(dv, dtype=torch.float64)
                for j in range(i + 1):
                    if ids[b, j] == 0:
                        continue
                    s = torch.dot(q[i][h], k[j][h]) + pos_w[i - j]
                    if ts is not None:
                        dt = max(abs(int(ts[b, i]) - int(ts[b, j])), 1)
                        s = s + time_w[min(int(math.log(dt) / 0.301), T)]
                    acc = acc + silu(s) / n * v[j][h]
                heads.append(acc)
            gated = u[i] * norm(torch.cat(heads))
            out[b, i] = x[b, i].double() + W2 @ gated + b2
    return out


@settings(max_examples=15, deadline=None)
@given(
    B=st.integers(1, 3),
    L=st.integers(1, 7),
    H=st.integers(1, 3),
    dqk=st.integers(1, 5),
    dv=st.integers(1, 5),
    with_time=st.booleans(),
    seed=st.integers(0, 10**6),
)
def test_layer_matches_naive_loop(
    B: int, L: int, H: int, dqk: int, dv: int, with_time: bool, seed: int
) -> None:
    torch.manual_seed(seed)
    D, max_len = 8, 9
    layer = HSTULayer(D, H, dqk, dv, max_len, num_time_buckets=40, linear_dropout=0.5).eval()
    with torch.no_grad():  # larger biases than at init, so that a wrong index shows
        layer.pos_bias.normal_(0, 1.0)
        layer.time_bias.normal_(0, 1.0)
        layer.uvqk.normal_(0, 0.5)
    lengths = torch.randint(0, L + 1, (B,), generator=torch.Generator().manual_seed(seed)).tolist()
    ids, ts = random_rows(B, L, lengths, seed=seed)
    x = torch.randn(B, L, D)  # padding rows hold garbage: the layer must ignore them as keys
    valid = ids > 0
    idx = torch.arange(L)
    mask = (idx[:, None] >= idx[None, :])[None] & valid[:, None, :]
    buckets = bucketize_time_gaps(ts, 40) if with_time else None
    got = layer(x, mask, relative_positions(L, max_len), buckets, float(max_len))
    want = naive_layer(layer, x, ids, ts if with_time else None, float(max_len))
    torch.testing.assert_close(got[valid].double(), want[valid], rtol=1e-4, atol=1e-5)


# -- save / load, recommend ---------------------------------------------------------------------
def test_save_load_round_trip(tmp_path) -> None:
    model = tiny(use_time_bias=True, normalize=True)
    with torch.no_grad():
        for layer in model.layers:
            layer.time_bias.normal_()
    ids, ts = random_rows(3, 9, [9, 4, 1])
    batch = eval_batch(ids, ts)
    model.save_pretrained(tmp_path / "hstu")
    same = load_model(tmp_path / "hstu").eval()
    assert isinstance(same, HSTU) and same.config == model.config
    assert torch.equal(same.score_all(batch), model.score_all(batch))


@pytest.mark.parametrize("normalize", [True, False])
def test_recommend_valid_ids_and_exclusions(normalize: bool) -> None:
    model = tiny(normalize=normalize)
    ids, ts = random_rows(4, 10, [10, 6, 3, 0])
    batch = eval_batch(ids, ts)
    top = model.recommend(batch, k=8, exclude=ids)
    assert top.ids.shape == (4, 8) and top.scores.shape == (4, 8)
    assert torch.all(top.ids >= 1) and torch.all(top.ids <= N_ITEMS)
    for b in range(4):
        assert not set(top.ids[b].tolist()) & set(ids[b][ids[b] > 0].tolist())
        assert torch.all(top.scores[b, :-1] >= top.scores[b, 1:])
    everything = model.recommend(batch, k=1000)
    assert everything.ids.shape == (4, N_ITEMS)
    assert torch.all(everything.ids.sort(1).values == torch.arange(1, N_ITEMS + 1))


# -- learning ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["sampled_softmax", "softmax"])
def test_learns_a_next_item_pattern(loss: str) -> None:
    """Item i is always followed by item i + 1 (mod N): HSTU learns it in 100 steps."""
    torch.manual_seed(0)
    N, L = 20, 8
    model = build_model(
        "hstu",
        num_items=N,
        max_len=L,
        dim=32,
        num_layers=1,
        dqk=16,
        dv=16,
        dropout=0.0,
        linear_dropout=0.0,
        loss=loss,
        num_negatives=16,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=0.0)

    def pattern(B: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = torch.randint(0, N, (B, 1))
        seq = (start + torch.arange(L + 1)) % N + 1  # (B, L+1) in 1..N
        ts = 1_000_000 + 3600 * torch.arange(L)[None].expand(B, L)
        return seq, ts

    def batch(B: int) -> SequenceBatch:
        seq, ts = pattern(B)
        cut = torch.randint(0, L - 1, (B,))  # random left padding
        keep = torch.arange(L)[None] >= cut[:, None]
        return SequenceBatch(
            input_ids=seq[:, :-1] * keep,
            target_ids=seq[:, 1:] * keep,
            lengths=keep.sum(1),
            user_ids=torch.arange(B),
            timestamps=ts * keep,
        )

    model.train()
    losses = []
    for _ in range(100):
        out = model.compute_loss(batch(64))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10, losses[::10]
    model.eval()
    seq, ts = pattern(50)
    top = model.recommend(eval_batch(seq[:, :-1], ts), k=1)
    assert (top.ids[:, 0] == seq[:, -1]).float().mean() >= 0.95


# -- devices and precision -----------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast(device: str) -> None:
    model = tiny().to(device)
    ids, ts = random_rows(3, 12, [12, 8, 2])
    ids, ts = ids.to(device), ts.to(device)
    ref = model.user_states(eval_batch(ids, ts))
    with torch.autocast(device, dtype=torch.bfloat16):
        states = model.user_states(eval_batch(ids, ts))
        model.train()
        loss = model.compute_loss(sequence_batch(ids.cpu(), ts.cpu()).to(device)).loss
        model.eval()
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(states).all()
    torch.testing.assert_close(states.float(), ref, rtol=0, atol=0.05)
    top = model.recommend(eval_batch(ids, ts), k=5, exclude=ids)
    assert top.ids.device.type == device and torch.all(top.ids >= 1)


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"num_items": 0},
            "The 'num_items' parameter of HSTUConfig must be an int >= 1. Got 0 instead.",
        ),
        ({"dqk": 0}, "The 'dqk' parameter of HSTUConfig must be an int >= 1. Got 0 instead."),
        ({"dv": 2.5}, "The 'dv' parameter of HSTUConfig must be an int >= 1. Got 2.5 instead."),
        (
            {"num_layers": -1},
            "The 'num_layers' parameter of HSTUConfig must be an int >= 0. Got -1 instead.",
        ),
        (
            {"num_heads": True},
            "The 'num_heads' parameter of HSTUConfig must be an int >= 1. Got True instead.",
        ),
        (
            {"num_time_buckets": 0},
            "The 'num_time_buckets' parameter of HSTUConfig must be an int >= 1.",
        ),
        (
            {"dropout": 1.0},
            "The 'dropout' parameter of HSTUConfig must be a float in [0, 1). Got 1.0 instead.",
        ),
        (
            {"linear_dropout": -0.1},
            "The 'linear_dropout' parameter of HSTUConfig must be a float in [0, 1).",
        ),
        (
            {"temperature": 0},
            "The 'temperature' parameter of HSTUConfig must be a float > 0. Got 0 instead.",
        ),
        (
            {"use_time_bias": "yes"},
            "The 'use_time_bias' parameter of HSTUConfig must be a bool. Got 'yes' instead.",
        ),
        (
            {"loss": "bce"},
            "The 'loss' parameter of HSTUConfig must be one of ['softmax', 'sampled_softmax']. Got 'bce'",
        ),
        ({"num_negatives": 0}, "at least one negative with loss='sampled_softmax'"),
        (
            {"position_from": "left"},
            "The 'position_from' parameter of HSTUConfig must be one of ['oldest', 'newest'].",
        ),
    ],
)
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        HSTUConfig(**{"num_items": 10, **overrides})
    assert message in str(info.value)


def test_config_defaults_follow_the_ml1m_gin() -> None:
    c = HSTUConfig(num_items=3706)
    assert (c.max_len, c.dim, c.num_layers, c.num_heads, c.dqk, c.dv) == (200, 50, 2, 1, 50, 50)
    assert (c.dropout, c.linear_dropout, c.loss, c.num_negatives, c.temperature, c.normalize) == (
        0.2,
        0.2,
        "sampled_softmax",
        128,
        0.05,
        True,
    )
    HSTUConfig(num_items=10, loss="softmax", num_negatives=0)  # negatives unused: fine


def test_bad_inputs() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="exceed HSTU's max_len=12"):
        model.encode(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"timestamps must have the shape of the item ids \(2, 5\)"
    ):
        model.encode(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="Unknown config key"):
        build_model("hstu", num_items=5, attention_dim=8)
    with pytest.raises(TypeError):
        HSTU(object())  # type: ignore[arg-type]


def test_scores_are_cosine_over_normalized_items() -> None:
    model = tiny()
    ids, ts = random_rows(2, 6, [6, 3])
    batch = eval_batch(ids, ts)
    states = model.user_states(batch)
    items = F.normalize(model.item_emb.weight, dim=-1)
    torch.testing.assert_close(
        model.score_all(batch)[:, 1:], states @ items[1:].T, rtol=1e-5, atol=1e-6
    )
