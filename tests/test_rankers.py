"""CTR rankers: the co-action unit against a hand-written reference, masking, every ranker's shapes,
save/load round trip and a few training steps through the common trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shortlist.data.ctr import CTRData, CTRLoader, CTRPart, FeatureSpec, Field
from shortlist.data.ctr.dataset import SEQ_END, SEQ_ROW
from shortlist.data.sequences import Jagged
from shortlist.models import MODELS, build_model, load_model
from shortlist.models.rankers import CAN, Ranker, coaction
from shortlist.train.trainer import TrainConfig, Trainer

RANKERS = [n for n in MODELS.names() if issubclass(MODELS.get(n), Ranker)]
N_ITEMS, N_USERS, N_CATS, L = 30, 12, 5, 6


def tiny_ctr(rows: int = 256, seed: int = 0) -> CTRData:
    """Every field kind: sparse, derived sparse, multi, dense, two behaviour sequences; a learnable label."""
    rng = np.random.default_rng(seed)
    cate = np.r_[0, rng.integers(1, N_CATS + 1, N_ITEMS)]
    tags = np.zeros((N_ITEMS + 1, 3), dtype=np.int64)
    tags[1:, 0] = rng.integers(1, 8, N_ITEMS)
    tags[1:, 1] = rng.integers(0, 8, N_ITEMS)
    seq_lengths = rng.integers(2, 10, N_USERS)
    seqs = Jagged.from_lengths(rng.integers(1, N_ITEMS + 1, int(seq_lengths.sum())), seq_lengths)
    spec = FeatureSpec(
        [
            Field("user_id", "sparse", N_USERS + 1),
            Field("item_id", "sparse", N_ITEMS + 1),
            Field("cate_id", "sparse", N_CATS + 1, source="item_id", lookup="cate"),
            Field("tags", "multi", 8, max_len=3, source="item_id", lookup="tags"),
            Field("price", "dense", 2),
            Field("hist_item", "sequence", N_ITEMS + 1, max_len=L, vocab="item_id", target="item_id"),
            Field("hist_cate", "sequence", N_CATS + 1, max_len=L, vocab="cate_id", source="hist_item",
                  lookup="cate", target="cate_id"),
        ],
        user_field="user_id",
    )  # fmt: skip

    def part(n: int) -> CTRPart:
        user = rng.integers(0, N_USERS, n)
        item = rng.integers(1, N_ITEMS + 1, n)
        label = ((item + user) % 2).astype(np.float32)  # memorisable from user x item
        return CTRPart(
            {
                "user_id": user + 1,
                "item_id": item,
                "price": rng.random((n, 2)).astype(np.float32),
                "label": label,
                SEQ_ROW: user,
                SEQ_END: rng.integers(0, seq_lengths[user] + 1),
            }
        )

    return CTRData(
        "tiny",
        spec,
        {"train": part(rows), "valid": part(64), "test": part(64)},
        sequences={"hist_item": seqs},
        lookups={"cate": cate, "tags": tags},
    )


def reference_coaction(ind: np.ndarray, feed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One (induction, feed) pair by hand: W1 (16, 8), W2 (8, 4) from the 160-wide induction vector,
    orders 1..3, tanh after the first layer only, outputs [h1, h2] per order, summed over real positions."""
    W1 = ind[:128].reshape(16, 8)
    W2 = ind[128:160].reshape(8, 4)
    out = np.zeros(36)
    for t in range(feed.shape[0]):
        if not mask[t]:
            continue
        for c in range(1, 4):
            h1 = np.tanh((feed[t] ** c) @ W1)
            h2 = h1 @ W2
            out[(c - 1) * 12 : c * 12] += np.concatenate([h1, h2])
    return out


def test_coaction_matches_a_hand_written_reference() -> None:
    rng = np.random.default_rng(1)
    ind = rng.normal(0, 0.3, (2, 160))
    feed = rng.normal(0, 0.5, (2, 5, 16))
    mask = np.array([[True, True, False, True, False], [False, False, True, True, True]])
    got = coaction(
        torch.tensor(ind), torch.tensor(feed), torch.tensor(mask), [[16, 8], [8, 4]], orders=3
    )
    assert got.shape == (2, 36)
    for b in range(2):
        np.testing.assert_allclose(
            got[b].numpy(), reference_coaction(ind[b], feed[b], mask[b]), rtol=1e-10
        )


def test_coaction_bias_and_order_independence_slices() -> None:
    rng = np.random.default_rng(2)
    d_in, d_out = 3, 2
    per_order = d_in * d_out + d_out
    ind = rng.normal(size=(1, 2 * per_order))
    feed = rng.normal(size=(1, 1, d_in))
    got = coaction(torch.tensor(ind), torch.tensor(feed), None, [[d_in, d_out]], orders=2,
                   bias=True, order_independent=True)  # fmt: skip
    expected = []
    for c in range(2):
        block = ind[0, c * per_order : (c + 1) * per_order]
        W, b = block[: d_in * d_out].reshape(d_in, d_out), block[d_in * d_out :]
        expected.append(feed[0, 0] ** (c + 1) @ W + b)  # one layer: no activation
    np.testing.assert_allclose(got[0].numpy(), np.concatenate(expected), rtol=1e-10)


def test_coaction_ignores_padded_positions() -> None:
    rng = np.random.default_rng(3)
    ind = torch.tensor(rng.normal(size=(1, 160)))
    feed = torch.tensor(rng.normal(size=(1, 4, 16)))
    mask = torch.tensor([[False, True, True, False]])
    other = feed.clone()
    other[0, 0] = 100.0
    other[0, 3] = -7.0
    a = coaction(ind, feed, mask, [[16, 8], [8, 4]], orders=3)
    b = coaction(ind, other, mask, [[16, 8], [8, 4]], orders=3)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", RANKERS)
def test_extra_left_padding_changes_nothing(name: str) -> None:
    data = tiny_ctr()
    torch.manual_seed(0)
    model = build_model(name, features=data.spec, embed_dim=8, hidden=[16]).eval()
    feats = data.features("valid", np.arange(16))
    batch = {k: torch.from_numpy(v) for k, v in feats.items()}
    padded = dict(batch)
    for f in ("hist_item", "hist_cate"):
        padded[f] = torch.cat([torch.zeros(16, 4, dtype=torch.long), batch[f]], dim=1)
    torch.testing.assert_close(model.predict_proba(batch), model.predict_proba(padded))


@pytest.mark.parametrize("name", RANKERS)
def test_ranker_shapes_save_load_and_training(name: str, tmp_path: Path) -> None:
    data = tiny_ctr()
    torch.manual_seed(0)
    model = build_model(name, features=data.spec, embed_dim=8, hidden=[32, 16])
    loader = CTRLoader(data, "train", batch_size=64, shuffle=True, seed=0)
    batch = next(iter(loader))
    p = model.eval().predict_proba(batch)
    assert p.shape == (64,) and bool(((p > 0) & (p < 1)).all())
    before = float(model.compute_loss(batch).loss.detach())
    cfg = TrainConfig(
        epochs=15, batch_size=64, lr=1e-2, progress=False, device="cpu", metric="auc", patience=0
    )
    result = Trainer(model, loader, cfg, tmp_path).fit()
    assert result.epochs_run == 15
    model.eval()
    full = CTRLoader(data, "train", batch_size=256)
    after = float(model.compute_loss(next(iter(full))).loss.detach())
    assert after < before - 0.05, (before, after)
    again = load_model(tmp_path / "best").eval()
    assert type(again) is type(model)
    torch.testing.assert_close(again.predict_proba(batch), model.predict_proba(batch))


def test_trainer_early_stops_on_validation_auc_and_resumes(tmp_path: Path) -> None:
    from shortlist.eval.ctr_protocol import evaluate_ctr

    data = tiny_ctr()
    torch.manual_seed(0)
    model = build_model("deepfm", features=data.spec, embed_dim=8, hidden=[16])
    loader = CTRLoader(data, "train", batch_size=64, shuffle=True)

    def validate(m: object) -> dict[str, float]:
        return evaluate_ctr(m, data, "valid", batch_size=32).metrics  # type: ignore[arg-type]

    cfg = TrainConfig(epochs=2, batch_size=64, progress=False, device="cpu", metric="auc")
    first = Trainer(model, loader, cfg, tmp_path, evaluate=validate).fit()
    assert first.epochs_run == 2 and "auc" in first.best_metrics
    cfg3 = TrainConfig(epochs=3, batch_size=64, progress=False, device="cpu", metric="auc")
    resumed = Trainer(model, loader, cfg3, tmp_path, evaluate=validate).fit()
    assert resumed.epochs_run == 3 and len(resumed.history) == 3


def test_can_pairs_config_and_errors() -> None:
    data = tiny_ctr()
    can = build_model("can", features=data.spec)
    assert isinstance(can, CAN)
    assert can.config.coaction_pairs == [["item_id", "hist_item"], ["cate_id", "hist_cate"]]
    assert can.coaction_dim == 2 * 36 and can.config.induction_width == 160
    # parameter independence: the co-action tables are not the main embeddings
    main = {id(p) for p in can.embedding.parameters()}
    assert not main & {id(p) for p in [*can.induction.parameters(), *can.feed.parameters()]}
    user_side = build_model("can", features=data.spec, coaction_pairs=[["item_id", "user_id"]])
    assert user_side.coaction_dim == 36
    with pytest.raises(ValueError, match="induction side 'tags' must be a sparse field"):
        build_model("can", features=data.spec, coaction_pairs=[["tags", "hist_item"]])
    with pytest.raises(ValueError, match=r"each co-action pair is \[induction field, feed field\]"):
        build_model("can", features=data.spec, coaction_pairs=[["item_id", "nope"]])
    with pytest.raises(ValueError, match="'layers' parameter of CANConfig must chain"):
        build_model("can", features=data.spec, layers=[[16, 8], [4, 4]])
    without = build_model("din", features=data.spec, exclude_fields=["hist_item"])
    assert "hist_cate" not in without.config.spec.names()  # derived from an excluded field


@pytest.mark.parametrize("name", RANKERS)
def test_linear_init_xavier_as_recbole(name: str) -> None:
    data = tiny_ctr()
    torch.manual_seed(0)
    plain = build_model(name, features=data.spec, embed_dim=8, hidden=[64, 32])
    torch.manual_seed(0)
    xav = build_model(name, features=data.spec, embed_dim=8, hidden=[64, 32], linear_init="xavier")
    lin = [m for m in xav.modules() if isinstance(m, torch.nn.Linear)]
    assert lin and all(m.bias is None or not m.bias.any() for m in lin)  # zero biases
    big = max(lin, key=lambda m: m.weight.numel())
    fan_out, fan_in = big.weight.shape
    want = (2.0 / (fan_in + fan_out)) ** 0.5  # Xavier-normal std
    assert abs(float(big.weight.detach().std()) / want - 1) < 0.1
    # the default keeps PyTorch's initialisation (uniform, non-zero biases) and the same embeddings
    assert any(
        m.bias is not None and m.bias.any()
        for m in plain.modules()
        if isinstance(m, torch.nn.Linear)
    )
    emb = [n for n, _ in plain.named_parameters() if ".tables." in n]  # (dense fields: Linear)
    assert emb
    for n in emb:
        torch.testing.assert_close(
            dict(plain.named_parameters())[n], dict(xav.named_parameters())[n]
        )
    with pytest.raises(ValueError, match=r"'linear_init' parameter of .* Got 'he'"):
        build_model(name, features=data.spec, linear_init="he")


def test_embed_init_joint_uses_one_xavier_std_for_all_tables() -> None:
    from shortlist.models.rankers.features import FeatureEmbedding

    data = tiny_ctr()
    torch.manual_seed(0)
    emb = FeatureEmbedding(data.spec, 512, std="joint")
    sizes = {name: t.num_embeddings for name, t in emb.tables.items()}
    want = (2.0 / (sum(sizes.values()) + 512)) ** 0.5
    for name, table in emb.tables.items():
        assert not table.weight[0].any()  # padding row
        got = float(table.weight[1:].detach().std())
        assert abs(got / want - 1) < 0.15, (name, got, want)
    model = build_model("deepfm", features=data.spec, embed_dim=8, embed_init="xavier_joint")
    assert model.embed_std == "joint"
    with pytest.raises(ValueError, match=r"std must be None, 'joint' or > 0"):
        FeatureEmbedding(data.spec, 4, std=-1.0)
    with pytest.raises(ValueError, match=r"'embed_init' parameter of .* Got 'he'"):
        build_model("din", features=data.spec, embed_init="he")


def test_mlp_dropout_first_drops_the_input_not_the_output_layer_input() -> None:
    from shortlist.models.rankers.base import mlp

    def kinds(head: torch.nn.Sequential) -> list[str]:
        return [type(m).__name__ for m in head]

    after = mlp(8, [4, 3], dropout=0.5)
    first = mlp(8, [4, 3], dropout=0.5, dropout_first=True)
    assert kinds(after) == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert kinds(first) == ["Dropout", "Linear", "ReLU"] * 2 + ["Linear"]  # RecBole's MLPLayers
    assert kinds(mlp(8, [4], dropout_first=True)) == [
        "Linear",
        "ReLU",
        "Linear",
    ]  # no dropout: none
    # in eval mode both are the same function of the same weights
    x = torch.randn(5, 8)
    plain = [m for m in after if isinstance(m, torch.nn.Linear)]
    for src, dst in zip(plain, [m for m in first if isinstance(m, torch.nn.Linear)], strict=True):
        dst.load_state_dict(src.state_dict())
    after.eval(), first.eval()
    torch.testing.assert_close(after(x), first(x))
    data = tiny_ctr()
    model = build_model("deepfm", features=data.spec, dropout=0.2, dropout_first=True)
    assert isinstance(model.dnn[0], torch.nn.Dropout)
    with pytest.raises(
        ValueError, match="'dropout_first' parameter of DeepFMConfig must be a bool"
    ):
        build_model("deepfm", features=data.spec, dropout_first="yes")


def test_can_fm_adds_deepfm_wide_part_over_the_main_embeddings() -> None:
    """CAN with ``fm``: the same head output plus bias, first-order and FM terms (by hand)."""
    from shortlist.models.rankers.deepfm import fm_interaction

    data = tiny_ctr()
    torch.manual_seed(0)
    can = build_model("can", features=data.spec, embed_dim=8, hidden=[16], fm=True).eval()
    batch = next(iter(CTRLoader(data, "train", batch_size=32)))
    f = batch.features
    with torch.no_grad():
        torch.nn.init.normal_(can.fm_bias)
        got = can.logits(f)
        emb = can.embedding(f)
        e = can.embedding.stack(f, emb)
        head_in = torch.cat([e.flatten(1), can.tower(f, emb), can.coaction_outputs(f)], -1)
        pairs = [(e[:, i] * e[:, j]).sum(-1) for i in range(e.shape[1]) for j in range(i)]
        want = (
            can.head(head_in).squeeze(-1)
            + can.fm_bias
            + can.first_order.stack(f).sum((1, 2))
            + torch.stack(pairs, -1).sum(-1)
        )
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        fm_interaction(e), torch.stack(pairs, -1).sum(-1), rtol=1e-5, atol=1e-5
    )
    plain = build_model("can", features=data.spec, embed_dim=8, hidden=[16])
    assert not hasattr(plain, "first_order")


def test_dice_matches_the_din_formula_in_training_and_inference() -> None:
    """Dice (DIN eq. 7): p = sigmoid((s - mean) / sqrt(var + eps)), f = p s + (1 - p) a s; batch
    statistics (biased variance) in training, running averages at inference."""
    from shortlist.models.rankers.base import Dice

    dice = Dice(2)
    with torch.no_grad():
        dice.alpha.copy_(torch.tensor([0.25, -0.5]))
    s = torch.tensor([[1.0, -2.0], [3.0, 0.0], [-1.0, 4.0]])
    out = dice.train()(s)
    for j in range(2):
        col = s[:, j]
        mean, var = float(col.mean()), float(((col - col.mean()) ** 2).mean())
        for i in range(3):
            x = float(s[i, j])
            p = 1.0 / (1.0 + np.exp(-(x - mean) / np.sqrt(var + 1e-9)))
            expected = p * x + (1 - p) * float(dice.alpha.detach()[j]) * x
            assert abs(float(out.detach()[i, j]) - expected) < 1e-5
    # inference: the running averages after one step (momentum 0.1 from mean 0, var 1)
    dice.eval()
    x = torch.tensor([[2.0, -1.0]])
    m = 0.1 * s.mean(0)
    v = 0.9 + 0.1 * s.var(0, unbiased=True)
    p = torch.sigmoid((x - m) / torch.sqrt(v + 1e-9))
    torch.testing.assert_close(dice(x), p * x + (1 - p) * dice.alpha * x)


def test_dice_head_builds_trains_and_rejects_unknown_activations() -> None:
    from shortlist.models.rankers.base import Dice

    data = tiny_ctr()
    model = build_model("din", features=data.spec, embed_dim=8, hidden=[32, 16], activation="dice")
    assert sum(isinstance(m, Dice) for m in model.modules()) == 2
    batch = next(iter(CTRLoader(data, "train", batch_size=64, shuffle=True, seed=0)))
    model.train().compute_loss(batch).loss.backward()
    assert all(m.alpha.grad is not None for m in model.modules() if isinstance(m, Dice))
    with pytest.raises(ValueError, match=r"'relu', 'prelu' or 'dice'\. Got 'gelu'"):
        build_model("din", features=data.spec, activation="gelu")
