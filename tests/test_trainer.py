"""The trainer: learning, checkpoint-resume equality, early stopping, the JSONL log, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seq_helpers import cyclic_sequences, tiny_sasrec
from shortlist.data.sequences import Jagged
from shortlist.models import build_model, load_model
from shortlist.train import checkpoint as ckpt
from shortlist.train.trainer import TrainConfig, Trainer, compile_width, trim_padding


def _config(**kw: object) -> TrainConfig:
    return TrainConfig(
        **{"epochs": 3, "batch_size": 16, "lr": 0.01, "num_workers": 0, "progress": False, **kw}
    )


def test_resume_after_kill_gives_the_same_weights(tmp_path: Path) -> None:
    data = cyclic_sequences()
    straight = tiny_sasrec()
    Trainer(straight, data, _config(), tmp_path / "a").fit()

    interrupted = tiny_sasrec()
    Trainer(interrupted, data, _config(epochs=1), tmp_path / "b").fit()  # "killed" after epoch 1
    resumed = tiny_sasrec()  # a new process: fresh weights, then the checkpoint
    result = Trainer(resumed, data, _config(), tmp_path / "b").fit()
    assert result.epochs_run == 3
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(
            a, b, rtol=0, atol=0, msg=f"parameter {name} differs after resume"
        )


def test_early_stopping_and_best_model(tmp_path: Path) -> None:
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.05, 0.4])
    result = Trainer(
        tiny_sasrec(),
        cyclic_sequences(),
        _config(epochs=7, patience=2),
        tmp_path,
        evaluate=lambda m: {"ndcg@10": next(scores)},
    ).fit()
    assert result.best_epoch == 2 and result.epochs_run == 4 and result.stopped_early
    assert result.stopped_by == "patience"
    assert result.best_metrics == {"ndcg@10": 0.3}
    assert isinstance(load_model(tmp_path / "best"), type(tiny_sasrec()))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["valid"]["ndcg@10"] for r in epochs] == [0.1, 0.3, 0.2, 0.25]
    assert all(r["sequences_per_s"] > 0 for r in epochs)
    assert any(r["type"] == "train" and np.isfinite(r["loss"]) for r in records)
    # resuming a run that already stopped early trains no further
    again = Trainer(
        tiny_sasrec(),
        cyclic_sequences(),
        _config(epochs=7, patience=2),
        tmp_path,
        evaluate=lambda m: {"ndcg@10": 1.0},
    ).fit()
    assert again.epochs_run == 4 and again.stopped_early and again.best_epoch == 2
    assert again.stopped_by == "patience"


def test_loss_goes_down(tmp_path: Path) -> None:
    model = tiny_sasrec()
    result = Trainer(model, cyclic_sequences(), _config(epochs=8), tmp_path).fit()
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0] * 0.8


def test_missing_metric_is_a_clear_error(tmp_path: Path) -> None:
    trainer = Trainer(
        tiny_sasrec(),
        cyclic_sequences(),
        _config(epochs=1),
        tmp_path,
        evaluate=lambda m: {"hr@10": 0.5},
    )
    with pytest.raises(
        ValueError,
        match=r"Early-stopping metric 'ndcg@10' not among the validation metrics \['hr@10'\]",
    ):
        trainer.fit()


def test_checkpoint_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck" / "last.pt"
    ckpt.save_checkpoint(path, {"a": 1})

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(path, {"a": 2})
    assert ckpt.load_checkpoint(path) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_trim_padding_keeps_the_real_columns() -> None:
    from shortlist.data.batches import SequenceBatch

    b = SequenceBatch(
        input_ids=torch.tensor([[0, 0, 0, 1, 2], [0, 0, 0, 0, 3]]),
        target_ids=torch.tensor([[0, 0, 0, 2, 4], [0, 0, 0, 0, 5]]),
        lengths=torch.tensor([2, 1]),
        user_ids=torch.tensor([0, 1]),
    )
    t = trim_padding(b)
    assert t.input_ids.tolist() == [[1, 2], [0, 3]] and t.target_ids.tolist() == [[2, 4], [0, 5]]


def test_config_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"The 'epochs' parameter of TrainConfig must be an int >= 1\. Got 0 instead\.",
    ):
        TrainConfig(epochs=0)
    with pytest.raises(
        ValueError, match=r"'compile_mode' .* one of \['default', .*Got 'fast' instead\."
    ):
        TrainConfig(compile_mode="fast")  # type: ignore[arg-type]


def test_compile_mode_reaches_torch_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, object]] = []
    widths: list[int] = []

    def fake_compile(
        module: torch.nn.Module, mode: str = "default", dynamic: object = None
    ) -> object:
        seen.append((mode, dynamic))

        def step(batch: object) -> torch.Tensor:  # eager: the test checks the wiring, not Inductor
            widths.append(batch.input_ids.shape[1])  # type: ignore[attr-defined]
            return module(batch)

        return step

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = build_model("sasrec", num_items=40, max_len=300, dim=16, num_heads=2)
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 400, 48)  # rows of every width up to max_len
    data = Jagged.from_lengths(rng.integers(1, 41, int(lengths.sum())), lengths)
    cfg = _config(epochs=1, batch_size=4, compile=True, compile_mode="max-autotune")
    Trainer(model, data, cfg, tmp_path / "run").fit()
    assert seen == [("max-autotune", False)]  # static shapes: the widths below repeat
    assert len(widths) == 12 and set(widths) <= {64, 128, 192, 256, 300}


def test_compile_width_by_hand() -> None:
    # 4 widths per octave from 256 up (steps of width's octave / 4), multiples of 64 below
    cases = {0: 0, 1: 64, 64: 64, 65: 128, 128: 128, 129: 192, 300: 320, 513: 640, 1100: 1280}
    assert {w: compile_width(w, 4096) for w in cases} == cases
    assert compile_width(1100, 1200) == 1200 and compile_width(2047, 2048) == 2048
    widths = {compile_width(w, 2048) for w in range(1, 2049)}
    assert widths == {64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024}.union(
        {1280, 1536, 1792, 2048}
    )
    assert all(compile_width(w, 2048) <= 1.25 * w for w in range(256, 2049))


@pytest.mark.parametrize("name", ["sasrec", "ksa", "elastic", "hstu"])
def test_bucketed_padding_leaves_the_loss_unchanged(name: str) -> None:
    """The extra left-padding columns of a compiled step's batch change no model's loss."""
    from shortlist.data.batches import SequenceBatch

    torch.manual_seed(0)
    model = build_model(name, num_items=30, max_len=200, dim=16).eval()
    rng = np.random.default_rng(1)
    lengths = torch.tensor([70, 5, 33])
    ids = torch.zeros(3, 200, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        ids[row, 200 - n :] = torch.from_numpy(rng.integers(1, 31, n))
    targets = torch.roll(ids, -1, 1)
    targets[:, -1] = torch.from_numpy(rng.integers(1, 31, 3))
    batch = SequenceBatch(
        input_ids=ids,
        target_ids=targets * (ids > 0),
        lengths=lengths,
        user_ids=torch.arange(3),
        timestamps=torch.cumsum(ids > 0, 1) * 60 * (ids > 0),
    )
    trimmed, bucketed = trim_padding(batch), trim_padding(batch, bucketed=True)
    assert trimmed.input_ids.shape[1] == 70 and bucketed.input_ids.shape[1] == 128  # < max_len
    losses = []
    for b in (trimmed, bucketed):
        torch.manual_seed(2)  # the same sampled negatives (HSTU's default loss samples them)
        losses.append(model.compute_loss(b).loss)
    torch.testing.assert_close(losses[1], losses[0])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("length_groups", [1, 3])
def test_ddp_two_processes_over_gloo(tmp_path: Path, length_groups: int) -> None:
    """torchrun with 2 CPU processes: same code path, weights stay identical across ranks (also
    with train.length_groups, whose groups but the last accumulate without DDP's sync)."""
    script = Path(__file__).parent / "scripts" / "ddp_train.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path),
            str(length_groups),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for name in w0:
        torch.testing.assert_close(w0[name], w1[name], msg=f"{name} differs between ranks")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["world_size"] == 2
    assert (
        summary["batches_per_rank"] * 2 >= summary["batches_single"]
    )  # the data is sharded, not duplicated
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists() and (
        tmp_path / "run" / "best"
    ).exists()


@pytest.mark.timeout(240)
def test_cli_train_under_torchrun(tmp_path: Path) -> None:
    """`torchrun -m shortlist.cli train`: both ranks train, rank 0 alone evaluates and reports."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SHORTLIST_CACHE": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "shortlist.cli",
        "train",
        str(root / "configs" / "synthetic" / "sasrec.yaml"),
        "--output-dir",
        str(tmp_path / "run"),
    ]
    for override in (
        "dataset.params.n_users=120",
        "dataset.params.n_items=60",
        "train.epochs=2",
        "model.dim=16",
        "train.progress=false",
    ):
        cmd += ["--set", override]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs_run"] == 2 and "hr@10" in results["test"]


def test_windows_all_trains_on_every_target(tmp_path: Path) -> None:
    seqs = Jagged.from_lengths(np.arange(40) % 20 + 1, np.array([25, 15]))  # longer than max_len
    last = Trainer(tiny_sasrec(), seqs, _config(epochs=1, batch_size=1), tmp_path / "a")
    every = Trainer(
        tiny_sasrec(), seqs, _config(epochs=1, batch_size=1, windows="all"), tmp_path / "b"
    )
    assert len(last.train) == 2 and len(every.train) == 3 + 2  # ceil(24/10) + ceil(14/10)
    n_last = sum(int(b.lengths.sum()) for b in last._loader())
    n_every = sum(int(b.lengths.sum()) for b in every._loader())
    assert (n_last, n_every) == (10 + 10, 24 + 14)
    every.fit()  # and it trains


def test_short_windows_add_each_target_again_with_short_context(tmp_path: Path) -> None:
    seqs = Jagged.from_lengths(np.arange(40) % 20 + 1, np.array([25, 15]))
    both = Trainer(
        tiny_sasrec(),
        seqs,
        _config(epochs=1, batch_size=1, windows="all", short_windows=4),
        tmp_path / "a",
    )
    # ceil(24/10) + ceil(14/10) windows of max_len 10, then ceil(24/4) + ceil(14/4) of 4
    assert len(both.train) == (3 + 2) + (6 + 4)
    assert max(len(both.train[i]) for i in range(5, 15)) == 4 + 1
    n_targets = sum(int(b.lengths.sum()) for b in both._loader())
    assert n_targets == 2 * (24 + 14)
    both.fit()
    with pytest.raises(
        ValueError, match="short_windows' parameter of TrainConfig needs windows='all'"
    ):
        _config(short_windows=4)
    with pytest.raises(
        ValueError, match=r"train.short_windows \(10\) must be below the model's max_len \(10\)"
    ):
        Trainer(tiny_sasrec(), seqs, _config(windows="all", short_windows=10), tmp_path / "b")


def test_time_limit_stops_after_the_epoch_that_passes_it(tmp_path: Path) -> None:
    result = Trainer(
        tiny_sasrec(), cyclic_sequences(), _config(epochs=50, time_limit_s=1e-9), tmp_path
    ).fit()
    assert result.epochs_run == 1 and result.stopped_early
    assert result.history[-1]["time_limit"] is True and result.stopped_by == "time_limit"
    done = Trainer(tiny_sasrec(), cyclic_sequences(), _config(epochs=2), tmp_path / "done").fit()
    assert not done.stopped_early and done.stopped_by == "epochs"


def test_deterministic_turns_torch_deterministic_algorithms_on_for_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # restored to its state at teardown
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    seen: list[bool] = []
    model = tiny_sasrec()
    compute = model.compute_loss

    workspaces: set[str | None] = set()

    def recording(batch):  # type: ignore[no-untyped-def]
        seen.append(torch.are_deterministic_algorithms_enabled())
        workspaces.add(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        return compute(batch)

    monkeypatch.setattr(model, "compute_loss", recording)
    assert not torch.are_deterministic_algorithms_enabled()
    Trainer(model, cyclic_sequences(), _config(epochs=1, deterministic=True), tmp_path / "a").fit()
    assert seen and all(seen)  # every training step ran with them
    assert workspaces == {":4096:8"}  # and with cuBLAS's fixed workspace
    assert not torch.are_deterministic_algorithms_enabled()  # both set back after the run
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    # a workspace the user set is kept, during the run and after it
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    workspaces.clear()
    Trainer(model, cyclic_sequences(), _config(epochs=1, deterministic=True), tmp_path / "c").fit()
    assert workspaces == {":16:8"} and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    seen.clear()
    Trainer(model, cyclic_sequences(), _config(epochs=1), tmp_path / "b").fit()
    assert seen and not any(seen)
