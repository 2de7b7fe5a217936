"""Experiment configs: every frozen config validates; unknown keys and bad values are clear errors;
the ML-1M configs run the HSTU protocol on a fixture in the official format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import write_ml1m_official
from shortlist.eval.protocols import DEFAULT_LENGTH_EDGES
from shortlist.train.config import ConfigError, apply_overrides, load_config, parse_config
from shortlist.train.experiment import run_experiment
from shortlist.train.quickstart import QUICKSTART

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_frozen_configs_validate_and_have_a_header(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.dataset.name == path.relative_to(ROOT / "configs").parts[0]
    assert path.name.removesuffix(".yaml").split("-")[0] == cfg.model["name"]
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert any("Command:" in line for line in header), "frozen configs record the exact command"
    assert any("Reaches" in line or "Anchor" in line for line in header), (
        "and the metric they reach"
    )


def test_quickstart_config_equals_the_yaml() -> None:
    assert (
        yaml.safe_load((ROOT / "configs" / "synthetic" / "sasrec.yaml").read_text()) == QUICKSTART
    )


def test_unknown_keys_are_rejected_with_the_valid_ones(tmp_path: Path) -> None:
    raw = apply_overrides(QUICKSTART, {"train.lrr": 0.1})
    with pytest.raises(
        ConfigError,
        match=r"quickstart: invalid experiment config: train: unknown key\(s\) \['lrr'\]; valid keys: \[",
    ):
        parse_config(raw, "quickstart")
    with pytest.raises(
        ConfigError, match=r"model: unknown key\(s\) \['layers'\] for model 'sasrec'"
    ):
        parse_config(apply_overrides(QUICKSTART, {"model.layers": 3}), "x")
    with pytest.raises(ConfigError, match="optimizer: unknown key"):
        parse_config({**QUICKSTART, "optimizer": "adam"}, "x")
    with pytest.raises(
        ConfigError, match="protocol: Input should be 'hstu', 'tiger', 'long' or 'ctr'"
    ):
        parse_config({**QUICKSTART, "protocol": "loo"}, "x")
    with pytest.raises(ConfigError, match=r"Unknown model 'sasrek'"):
        parse_config(apply_overrides(QUICKSTART, {"model.name": "sasrek"}), "x")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("model", ["sasrec", "hstu"])
def test_ml1m_configs_run_on_an_official_format_fixture(model: str, tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    write_ml1m_official(folder)
    # add users with enough events for leave-one-out
    with (folder / "users.dat").open("a") as fh:
        fh.writelines(f"{u}::M::25::1::00000\n" for u in range(3, 9))
    with (folder / "ratings.dat").open("a") as fh:
        fh.writelines(
            f"{u}::{i}::4::{978300000 + 10 * i + u}\n" for u in range(3, 9) for i in (1, 2, 3)
        )
    overrides = {
        "dataset.data_dir": str(folder),
        "output_dir": str(tmp_path / "run"),
        "train.epochs": 1,
        "train.num_workers": 0,
        "train.progress": False,
        "model.dim": 8,
        "model.max_len": 4,
        "train.batch_size": 4,
    }
    if model == "hstu":
        overrides |= {"model.dqk": 4, "model.dv": 4}
    cfg = load_config(ROOT / "configs" / "ml-1m" / f"{model}.yaml", overrides)
    result = run_experiment(cfg)
    assert set(result.test) >= {"hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200"}
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (
        saved["protocol"] == "hstu" and saved["split"]["test"] == 7
    )  # users 1 and 3..8 have >= 3 ratings
    buckets = saved["test_by_history_length"]  # the default edges, the last bucket open
    assert [b["min_length"] for b in buckets] == list(DEFAULT_LENGTH_EDGES)
    assert buckets[-1]["max_length"] is None and buckets[-2]["max_length"] == 499


def test_sequential_run_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    """The seed fixes the initial weights as well as the batches: the same config and seed twice
    give the same metrics, another seed other ones."""
    metrics = []
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        overrides = {
            "dataset.params": {"n_users": 60, "n_items": 40},
            "output_dir": str(tmp_path / run),
            "train.epochs": 1,
            "train.progress": False,
            "train.threads": 0,
            "train.seed": seed,
            "model.dim": 8,
            "model.max_len": 8,
            "train.batch_size": 16,
        }
        cfg = load_config(ROOT / "configs" / "synthetic" / "sasrec.yaml", overrides)
        metrics.append(run_experiment(cfg).valid)
    assert metrics[0] == metrics[1]
    assert metrics[0] != metrics[2]


@pytest.mark.parametrize("family", ["sasrec", "hstu"])
def test_frozen_beauty_configs_are_the_chosen_sweep_config_with_its_figures(family: str) -> None:
    """configs/amazon-beauty/<family>.yaml is the sweep config seqrec_beauty.json chose, and its
    header's "Reaches" figures are that result's test means (rounded to 4 places), not typed."""
    import json
    import re

    result = json.loads((ROOT / "benchmarks" / "results" / "seqrec_beauty.json").read_text())
    (row,) = [
        r for r in result["rows"]
        if r["model"] == f"shortlist {family}" and r["variant"].startswith("mean of")
    ]  # fmt: skip
    chosen = re.search(r"config (\S+), chosen", row["variant"]).group(1)  # type: ignore[union-attr]
    frozen = (ROOT / "configs" / "amazon-beauty" / f"{family}.yaml").read_text()
    sweep = (ROOT / "configs" / "amazon-beauty" / "sweep" / f"{chosen}.yaml").read_text()

    def body(text: str) -> dict:  # type: ignore[type-arg]
        cfg = yaml.safe_load(text)
        return {k: v for k, v in cfg.items() if k != "name"}

    assert body(frozen) == body(sweep), f"{family}.yaml is not the chosen sweep config {chosen}"
    assert f"sweep config {chosen} " in frozen
    reaches = re.search(r"Reaches \(.*\): (.*)", frozen).group(1)  # type: ignore[union-attr]
    figures = dict(re.findall(r"(recall@\d+|ndcg@\d+) (\d\.\d{4})", reaches))
    assert set(figures) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    for metric, text in figures.items():
        assert text == f"{row['metrics'][metric]:.4f}", (metric, text)


@pytest.mark.parametrize(
    ("folder", "dataset", "family"),
    [
        ("amazon-beauty", "amazon-beauty", "ksa"),
        ("amazon-beauty", "amazon-beauty", "elastic"),
        ("ml-latest-small", "ml-latest-small", "sasrec"),
        ("ml-latest-small", "ml-latest-small", "ksa"),
        ("ml-latest-small", "ml-latest-small", "elastic"),
        ("ml-100k", "ml-100k", "ksa"),
        ("ml-100k", "ml-100k", "elastic"),
    ],
)
def test_frozen_long_history_configs_are_the_chosen_sweep_config(
    folder: str, dataset: str, family: str
) -> None:
    """configs/<folder>/<family>.yaml is the sweep config longseq_quality.json chose for that
    dataset and family, and its header's test NDCG@10 and HR/Recall@10 are that result's means
    (rounded to 4 places). A row of the sweep's own runs names the config ("config X, chosen"):
    the frozen config has its settings. A row of the frozen configs run side by side (the part's
    notes name configs/<folder>/{sasrec,ksa,elastic}.yaml) has the settings of the sweep config its
    header names."""
    import json
    import re

    result = json.loads((ROOT / "benchmarks" / "results" / "longseq_quality.json").read_text())
    (row,) = [
        r for r in result["rows"]
        if r["dataset"] == dataset and r["model"] == f"shortlist {family}"
        and r["variant"].startswith("mean of") and "not masked" not in r["protocol"]
    ]  # fmt: skip
    frozen = (ROOT / "configs" / folder / f"{family}.yaml").read_text()
    named = re.search(r"config (\S+), chosen", row["variant"])
    header = re.search(r"sweep config ([\w.-]+)", frozen)
    assert named or header, f"{family}.yaml does not name the sweep config it was chosen as"
    chosen = named.group(1) if named else header.group(1)  # type: ignore[union-attr]
    sweeps = sorted((ROOT / "configs" / folder).glob(f"sweep*/{chosen}.yaml"))
    assert sweeps, f"sweep config {chosen}.yaml: not found under configs/{folder}/sweep*"

    def body(text: str) -> dict:  # type: ignore[type-arg]
        cfg = yaml.safe_load(text)
        # the run's name and its evaluation batch size do not change a result
        evaluation = {k: v for k, v in (cfg.get("eval") or {}).items() if k != "batch_size"}
        return {k: v for k, v in cfg.items() if k not in ("name", "eval")} | {"eval": evaluation}

    # a config run again in a later round keeps its name only with the same settings
    assert len({json.dumps(body(p.read_text()), sort_keys=True) for p in sweeps}) == 1, (
        f"sweep configs named {chosen} differ: {sweeps}"
    )

    if named:
        assert body(frozen) == body(sweeps[0].read_text()), f"{family}.yaml is not {sweeps[0]}"
    else:
        assert f"configs/{folder}/{{sasrec,ksa,elastic}}.yaml" in result["notes"]
        assert body(frozen) == body(sweeps[0].read_text()), f"{family}.yaml is not {chosen}"
    reaches = re.search(r"Reaches \(.*\): (.*)", frozen).group(1)  # type: ignore[union-attr]
    own = reaches.split("(")[0]  # the model's figures; the parenthesis has SASRec's
    figures = dict(re.findall(r"(recall@10|hr@10|ndcg@10) (\d\.\d{4})", own))
    assert "ndcg@10" in figures and len(figures) == 2, reaches
    for metric, text in figures.items():
        assert text == f"{row['metrics'][metric]:.4f}", (metric, text)
