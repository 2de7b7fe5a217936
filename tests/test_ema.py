"""The moving average of the weights: its update rule by hand, the swap in and out, the trainer's use
of it (validation, best model, checkpoint resume) and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from seq_helpers import cyclic_sequences, tiny_sasrec
from shortlist.models import load_model
from shortlist.train import checkpoint as ckpt
from shortlist.train.ema import WeightAverage
from shortlist.train.trainer import TrainConfig, Trainer


def _linear(w: float) -> nn.Linear:
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(w)
    return layer


def test_update_follows_the_warmup_then_the_decay_by_hand() -> None:
    layer = _linear(0.0)
    ema = WeightAverage(layer, decay=0.5)
    # t = 0: d = min(0.5, 1/10) = 0.1 -> shadow = 0.1 * 0 + 0.9 * 10 = 9
    layer.weight.data.fill_(10.0)
    ema.update(layer)
    assert ema.shadow[0].item() == pytest.approx(9.0)
    # t = 1: d = min(0.5, 2/11) = 2/11 -> shadow = 2/11 * 9 + 9/11 * 20
    layer.weight.data.fill_(20.0)
    ema.update(layer)
    assert ema.shadow[0].item() == pytest.approx(2 / 11 * 9 + 9 / 11 * 20)
    # from t = 8 on, (1 + t) / (10 + t) >= 0.5: the long-run decay
    ema.updates = 8
    before = ema.shadow[0].item()
    layer.weight.data.fill_(0.0)
    ema.update(layer)
    assert ema.current_decay() == 0.5
    assert ema.shadow[0].item() == pytest.approx(0.5 * before)
    assert ema.updates == 9


def test_applied_swaps_the_average_in_and_the_live_weights_back() -> None:
    layer = _linear(1.0)
    ema = WeightAverage(layer, decay=0.9)
    layer.weight.data.fill_(3.0)
    with ema.applied(layer) as m:
        assert m.weight.item() == 1.0  # the average (no update yet: the initial weights)
        assert m(torch.ones(1, 1)).item() == 1.0
    assert layer.weight.item() == 3.0
    with pytest.raises(RuntimeError, match="boom"), ema.applied(layer):
        raise RuntimeError("boom")
    assert layer.weight.item() == 3.0  # restored after an error too


def test_state_dict_round_trip_and_mismatch() -> None:
    layer = _linear(2.0)
    ema = WeightAverage(layer, decay=0.99)
    layer.weight.data.fill_(5.0)
    ema.update(layer)
    other = WeightAverage(_linear(0.0), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.shadow[0].item() == ema.shadow[0].item() and other.updates == 1
    assert other.decay == 0.99
    with pytest.raises(ValueError, match="tracks other parameters"):
        WeightAverage(nn.Linear(1, 1), decay=0.5).load_state_dict(ema.state_dict())


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, True])
def test_decay_outside_the_open_interval_is_a_clear_error(decay: float) -> None:
    with pytest.raises(
        ValueError, match=r"'ema_decay' parameter of TrainConfig must be a float in \(0, 1\)"
    ):
        TrainConfig(ema_decay=decay)


# -- in the trainer -------------------------------------------------------------------------------


def _config(**kw: object) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 16, "lr": 0.01, "num_workers": 0, "progress": False}
    return TrainConfig(**{**base, "ema_decay": 0.9, **kw})


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_trainer_validates_and_saves_the_average(tmp_path: Path) -> None:
    model = tiny_sasrec()
    seen: list[dict[str, torch.Tensor]] = []

    def evaluate(m: nn.Module) -> dict[str, float]:
        seen.append(_weights(m))
        return {"ndcg@10": float(len(seen))}  # always improving: the last epoch is the best

    Trainer(model, cyclic_sequences(), _config(), tmp_path, evaluate=evaluate).fit()
    saved = ckpt.load_checkpoint(tmp_path / "checkpoints" / ckpt.LAST)
    shadow = saved["ema"]["shadow"]
    assert saved["ema"]["updates"] == saved["state"]["step"] > 0
    live = _weights(model)
    best = _weights(load_model(tmp_path / "best"))
    for name, value in shadow.items():
        torch.testing.assert_close(seen[-1][name], value, rtol=0, atol=0)  # validated the average
        torch.testing.assert_close(best[name], value, rtol=0, atol=0)  # and saved it
        torch.testing.assert_close(live[name], saved["model"][name], rtol=0, atol=0)
    assert any(not torch.equal(live[n], shadow[n]) for n in shadow)  # training kept the live ones


def test_resume_with_the_average_gives_the_same_weights(tmp_path: Path) -> None:
    data = cyclic_sequences()
    straight = tiny_sasrec()
    Trainer(straight, data, _config(), tmp_path / "a").fit()
    Trainer(tiny_sasrec(), data, _config(epochs=1), tmp_path / "b").fit()  # "killed" after epoch 1
    resumed = tiny_sasrec()
    Trainer(resumed, data, _config(), tmp_path / "b").fit()
    a = ckpt.load_checkpoint(tmp_path / "a" / "checkpoints" / ckpt.LAST)["ema"]
    b = ckpt.load_checkpoint(tmp_path / "b" / "checkpoints" / ckpt.LAST)["ema"]
    assert a["updates"] == b["updates"]
    for name in a["shadow"]:
        torch.testing.assert_close(a["shadow"][name], b["shadow"][name], rtol=0, atol=0)
    for (name, x), (_, y) in zip(
        _weights(straight).items(), _weights(resumed).items(), strict=True
    ):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=f"parameter {name} differs")


def test_resuming_a_run_without_average_under_one_is_a_clear_error(tmp_path: Path) -> None:
    Trainer(tiny_sasrec(), cyclic_sequences(), _config(epochs=1, ema_decay=0.0), tmp_path).fit()
    with pytest.raises(ValueError, match=r"written without train\.ema_decay"):
        Trainer(tiny_sasrec(), cyclic_sequences(), _config(epochs=2), tmp_path).fit()


def test_weight_average_names_its_own_parameter_in_errors() -> None:
    with pytest.raises(
        ValueError, match=r"The 'decay' parameter of WeightAverage .* Got 0 instead"
    ):
        WeightAverage(nn.Linear(1, 1), decay=0)


def test_another_model_of_the_same_shape_by_name_and_a_foreign_one_is_an_error() -> None:
    ema = WeightAverage(_linear(1.0), decay=0.5)
    twin = _linear(7.0)  # same parameter names: looked up by name
    ema.update(twin)  # d = 0.1: 0.1 * 1 + 0.9 * 7
    assert ema.shadow[0].item() == pytest.approx(6.4)
    with ema.applied(twin):
        assert twin.weight.item() == pytest.approx(6.4)
    assert twin.weight.item() == 7.0
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['weight'\]"):
        ema.update(nn.Sequential(nn.Linear(1, 1)))
