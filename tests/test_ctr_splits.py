"""benchmarks/ctr_splits.py: per-split rows, means over splits and gaps to RecBole, by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ctr_splits import merge

RB_DCN = "RecBole 1.2.1 DCNV2 (lr 0.005)"
RB_FM = "RecBole 1.2.1 DeepFM (lr 0.005)"


def _result(can: float, dcn: float, fm: float, untuned: float | None = None) -> dict:
    def row(model: str, auc: float, variant: str = "mean of 3 seeds") -> dict:
        return {"model": model, "variant": variant, "metrics": {"auc": auc, "logloss": 0.3}}

    return {
        "rows": [
            row("shortlist can", can),
            row("shortlist can", 0.1, variant="seed=0"),  # seed rows are ignored
            row(RB_DCN, dcn, variant="seed=0; same split"),  # one seed: no mean row
            row(RB_FM, fm, variant="mean of 2 seeds"),
            row(RB_FM, 0.2, variant="seed=0; same split"),
            row("anchor: RecBole DCNV2", 0.8998, variant="RecBole benchmark/hyper/context"),
        ]
        + ([] if untuned is None else [row("RecBole 1.2.1 DCNV2", untuned)])
    }


def test_merge_means_over_splits_and_gaps_to_the_better_recbole() -> None:
    # RecBole's defaults on one split only: left out, though better than the tuned models there
    rows = merge(
        {"2020": _result(0.897, 0.898, 0.899, untuned=0.95), "1": _result(0.899, 0.900, 0.898)}
    )
    by = {(r.protocol, r.model, r.variant): r.metrics for r in rows}
    # per split: the gap is to the better of RecBole's two tuned models on those rows
    assert by[("ctr, split seed 2020", "shortlist can", "mean over seeds")][
        "auc_vs_best_recbole_gap"
    ] == pytest.approx(0.897 - 0.899)
    assert by[("ctr, split seed 1", "shortlist can", "mean over seeds")][
        "auc_vs_best_recbole_gap"
    ] == pytest.approx(0.899 - 0.900)
    mean = by[("ctr", "shortlist can", "mean over 2 splits")]
    assert mean["auc"] == pytest.approx(0.898)
    assert mean["auc_std"] == pytest.approx(0.002 / 2**0.5)  # sample std of (0.897, 0.899)
    assert mean["auc_vs_best_recbole_gap"] == pytest.approx(-0.0015)
    assert by[("ctr", RB_DCN, "mean over 2 splits")]["auc"] == pytest.approx(0.899)
    assert by[("ctr, split seed 1", RB_DCN, "mean over seeds")]["seeds"] == 1
    assert by[("ctr, split seed 1", RB_FM, "mean over seeds")]["seeds"] == 2
    assert not any("anchor" in m or m == "RecBole 1.2.1 DCNV2" for _, m, _ in by)


def test_merge_needs_recbole_rows_on_every_split() -> None:
    bare = {
        "rows": [{"model": "shortlist can", "variant": "mean of 3 seeds", "metrics": {"auc": 0.9}}]
    }
    with pytest.raises(SystemExit, match="no RecBole model was run on every split"):
        merge({"7": bare})
