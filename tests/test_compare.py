"""Per-example metric values, the ranks file and the paired bootstrap (shortlist.eval.compare)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shortlist.data.jagged import Jagged
from shortlist.data.sequences import EvalExamples
from shortlist.eval.compare import compare_runs, paired_bootstrap
from shortlist.eval.metrics import compute_metrics, metric_values
from shortlist.eval.protocols import EvalResult
from shortlist.eval.ranks import load_ranks, save_ranks


def test_metric_values_are_what_the_metrics_average() -> None:
    ranks = np.random.default_rng(0).integers(0, 300, size=500)
    keys = ["hr@10", "recall@50", "ndcg@10", "ndcg@200", "mrr"]
    means = {k: float(metric_values(ranks, k).mean()) for k in keys}
    assert means == pytest.approx(compute_metrics(ranks, keys))
    # by hand: ranks 0, 1, 12 -> NDCG@10 values 1, 1/log2(3), 0
    got = metric_values(np.array([0, 1, 12]), "ndcg@10")
    np.testing.assert_allclose(got, [1.0, 1 / np.log2(3), 0.0])
    with pytest.raises(ValueError, match="needs a cut-off"):
        metric_values(ranks, "ndcg")


def test_paired_bootstrap_level_and_shifted() -> None:
    v = np.random.default_rng(1).random(400)
    level = paired_bootstrap(v, v.copy(), n_boot=200)
    assert level["diff"] == 0.0 and level["ratio"] == 1.0
    assert level["diff_ci"] == (0.0, 0.0) and level["ratio_ci"] == pytest.approx((1.0, 1.0))
    assert level["p_not_above"] == 1.0  # A is never above B
    up = paired_bootstrap(v + 0.1, v, n_boot=200)  # the same shift on every example
    assert up["diff_ci"] == pytest.approx((0.1, 0.1)) and up["p_not_above"] == 0.0
    assert up["ratio_ci"][0] < up["ratio"] < up["ratio_ci"][1]


def test_paired_bootstrap_interval_shrinks_with_the_examples() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(300), rng.random(300)
    small = paired_bootstrap(a, b, n_boot=1000, seed=3)
    big = paired_bootstrap(np.tile(a, 4), np.tile(b, 4), n_boot=1000, seed=3)
    assert small["diff"] == pytest.approx(big["diff"])
    assert small["diff_ci"][0] < small["diff"] < small["diff_ci"][1]
    width = lambda r: r["diff_ci"][1] - r["diff_ci"][0]  # noqa: E731
    assert 0.4 < width(big) / width(small) < 0.6  # about 1 / sqrt(4)
    assert paired_bootstrap(a, b, n_boot=50, seed=9) == paired_bootstrap(a, b, n_boot=50, seed=9)


def test_paired_bootstrap_resamples_whole_groups() -> None:
    """Four copies of each example in one group carry one example's information: the grouped
    interval is as wide as the 300 examples' own, where the plain one narrows by about half."""
    rng = np.random.default_rng(4)
    a, b = rng.random(300), rng.random(300)
    own = paired_bootstrap(a, b, n_boot=1000, seed=3)
    users = np.repeat(np.arange(300), 4)
    grouped = paired_bootstrap(np.repeat(a, 4), np.repeat(b, 4), n_boot=1000, seed=3, groups=users)
    width = lambda r: r["diff_ci"][1] - r["diff_ci"][0]  # noqa: E731
    assert grouped["diff"] == pytest.approx(own["diff"])
    assert 0.85 < width(grouped) / width(own) < 1.15
    # unequal groups: the draw's mean is over the drawn examples, not a mean of group means
    level = paired_bootstrap(
        np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), n_boot=200, groups=np.array([7, 7, 9])
    )
    assert level["diff"] == pytest.approx(1 / 3)
    assert set(np.round(level["diff_ci"], 6)) <= {-1.0, 1 / 3, 1.0}
    # one example a group: the same draws as without groups
    assert paired_bootstrap(a, b, n_boot=50, seed=9, groups=np.arange(300)[::-1]) == (
        paired_bootstrap(a, b, n_boot=50, seed=9)
    )
    with pytest.raises(ValueError, match="one entry per example"):
        paired_bootstrap(a, b, groups=np.arange(3))


@pytest.mark.parametrize(
    ("a", "b", "kw", "match"),
    [
        (np.ones(3), np.ones(4), {}, "same examples"),
        (np.ones(0), np.ones(0), {}, "at least one example"),
        (np.ones(3), np.ones(3), {"n_boot": 5}, "n_boot"),
        (np.ones(3), np.ones(3), {"confidence": 1.0}, "confidence"),
    ],
)
def test_paired_bootstrap_rejects_bad_input(a, b, kw, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, **kw)


def _examples(users: np.ndarray, targets: np.ndarray) -> EvalExamples:
    offsets = np.arange(len(users) + 1, dtype=np.int64)
    return EvalExamples(users, Jagged(np.ones(len(users), dtype=np.int32), offsets), targets)


def _run(
    tmp_path: Path,
    name: str,
    ranks: np.ndarray,
    users: np.ndarray | None = None,
    exclude_history: bool = False,
) -> Path:
    n = len(ranks)
    users = np.arange(n) if users is None else users
    ex = _examples(users, np.arange(1, n + 1))
    res = EvalResult(
        metrics={},
        per_example_rank=ranks,
        history_lengths=np.ones(n),
        num_examples=n,
        exclude_history=exclude_history,
    )
    save_ranks(tmp_path / name, {"test": (ex, res)})
    return tmp_path / name


def test_ranks_round_trip_and_errors(tmp_path: Path) -> None:
    run = _run(tmp_path, "r", np.array([0, 5, 40]))
    got = load_ranks(run).get("test")
    assert got.ranks.tolist() == [0, 5, 40] and got.users.tolist() == [0, 1, 2]
    assert got.targets.tolist() == [1, 2, 3] and not got.exclude_history
    assert got.lengths is not None and got.lengths.tolist() == [1, 1, 1]
    assert not list(run.glob(".ranks.npz*"))  # no temporary file left behind
    # a file written before lengths were kept still loads, without them
    with np.load(run / "ranks.npz") as data:
        old = {k: data[k] for k in data.files if not k.endswith(".lengths")}
    np.savez(tmp_path / "old.npz", **old)
    (tmp_path / "old").mkdir()
    (tmp_path / "old.npz").rename(tmp_path / "old" / "ranks.npz")
    assert load_ranks(tmp_path / "old").get("test").lengths is None
    with pytest.raises(KeyError, match="no 'valid' split"):
        load_ranks(run).get("valid")
    with pytest.raises(FileNotFoundError, match="shortlist eval"):
        load_ranks(tmp_path / "empty")
    ex = _examples(np.arange(2), np.arange(1, 3))
    res = EvalResult(
        metrics={}, per_example_rank=np.zeros(3), history_lengths=np.ones(3), num_examples=3
    )
    with pytest.raises(ValueError, match="3 ranks for 2 examples"):
        save_ranks(tmp_path / "bad", {"test": (ex, res)})


def test_compare_runs_averages_seeds_and_checks_the_examples(tmp_path: Path) -> None:
    a0 = _run(tmp_path, "a0", np.array([0, 0, 50, 50]))  # NDCG@10 values 1, 1, 0, 0
    a1 = _run(tmp_path, "a1", np.array([0, 50, 0, 50]))
    b0 = _run(tmp_path, "b0", np.array([1, 50, 50, 50]))  # 1 / log2(3), 0, 0, 0
    c = compare_runs([a0, a1], [b0], "ndcg@10", n_boot=100)
    assert c.seed_means_a == (0.5, 0.5) and c.mean_a == 0.5
    assert c.mean_b == pytest.approx(0.25 / np.log2(3))
    assert c.ratio == pytest.approx(0.5 / (0.25 / np.log2(3))) and c.n_examples == 4
    assert "A/B" in c.summary() and c.ratio_ci[0] <= c.ratio <= c.ratio_ci[1]
    other = _run(tmp_path, "other", np.array([0, 0, 0, 0]), users=np.array([0, 1, 2, 9]))
    with pytest.raises(ValueError, match="did not rank the same 'test' examples"):
        compare_runs([a0], [other])
    masked = _run(tmp_path, "masked", np.array([0, 0, 0, 0]), exclude_history=True)
    with pytest.raises(ValueError, match="different history masking"):
        compare_runs([a0], [masked])
    with pytest.raises(ValueError, match="at least one run folder for B"):
        compare_runs([a0], [])


def test_paired_compare_script_writes_a_row_per_model_and_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import common
    import paired_compare

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    for seed in (0, 1):
        _run(tmp_path / "runs", f"base-s{seed}", np.array([1, 50, 50, 3]))
        _run(tmp_path / "runs", f"new-s{seed}", np.array([0, 0, 50, 3]))
    argv = [
        "--group", f"base={tmp_path}/runs/base-s*", "--group", f"new={tmp_path}/runs/new-s*",
        "--baseline", "base", "--metrics", "ndcg@10,hr@1", "--dataset", "demo",
        "--protocol", "hstu", "--boot", "50", "--name", "paired_demo", "--no-rebuild",
    ]  # fmt: skip
    paired_compare.main(argv)
    result = json.loads((tmp_path / "results" / "paired_demo.json").read_text())
    rows = result["rows"]
    assert [(r["model"], next(iter(r["metrics"]))) for r in rows] == [
        ("new", "ndcg@10"),
        ("new", "hr@1"),
    ]
    hr = rows[1]["metrics"]
    assert hr["hr@1"] == 0.5 and hr["hr@1_baseline"] == 0.0 and hr["p_not_above"] < 1.0
    assert (
        rows[0]["variant"] == "vs base, test, 2 and 2 seeds"
        and "Paired bootstrap" in result["notes"]
    )
    with pytest.raises(ValueError, match="not one of the groups"):
        paired_compare.main([*argv[:-5], "--baseline", "nope", "--name", "x", "--no-rebuild"])
    with pytest.raises(ValueError, match="no run folder matches"):
        common.glob_groups([f"a={tmp_path}/none*"])


def test_a_group_must_be_one_configs_seeds(tmp_path: Path) -> None:
    # the glob '*-elastic-s*' also matches '*-elastic-sw200-s0': two configs pooled as "10 seeds"
    import sys

    from shortlist.eval.compare import check_one_model

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import common

    def run(folder: str, name: str, seed: int) -> Path:
        path = _run(tmp_path, folder, np.array([0, 5]))
        (path / "results.json").write_text(
            json.dumps({"name": name, "train_config": {"seed": seed}})
        )
        return path

    for seed in (0, 1):
        run(f"m-elastic-s{seed}", "m-elastic", seed)
        run(f"m-elastic-sw200-s{seed}", "m-elastic-sw200", seed)
    with pytest.raises(ValueError, match="are runs of different configs; narrow the pattern"):
        common.glob_groups([f"e={tmp_path}/m-elastic-s*"])
    groups = common.glob_groups([f"e={tmp_path}/m-elastic-s[0-9]*"])
    assert [r.name for r in groups["e"]] == ["m-elastic-s0", "m-elastic-s1"]
    twice = run("m-elastic-again-s0", "m-elastic", 0)
    with pytest.raises(ValueError, match="both have training seed 0"):
        check_one_model([*groups["e"], twice], "A")
    check_one_model([tmp_path / "no-results"], "A")  # folders without results.json: not checked
