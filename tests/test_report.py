"""The run report: anchors as data, the HTML page, and reading the training log."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from shortlist.eval.anchors import ANCHORS, anchors_for
from shortlist.eval.protocols import get_protocol
from shortlist.eval.report import read_history, write_report

PNG = "data:image/png;base64,"


def _history(
    epochs: int = 4, steps_per_epoch: int = 5, keys: tuple[str, ...] = ("ndcg@10",)
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 10
            records.append(
                {"type": "train", "epoch": epoch, "step": step, "loss": 5.0 / step**0.3, "lr": 1e-3}
            )
        valid = {k: 0.01 * epoch + 0.001 * i for i, k in enumerate(keys)}
        records.append(
            {
                "type": "epoch",
                "epoch": epoch,
                "step": step,
                "train_s": 2.0,
                "sequences_per_s": 1000.0 + epoch,
                "loss": records[-1]["loss"],
                "valid": valid,
            }
        )
    return records


def _results(name: str, dataset: str, protocol: str, **overrides: Any) -> dict[str, Any]:
    keys = get_protocol(protocol).metric_keys
    test = {k: 0.05 + 0.01 * i for i, k in enumerate(keys)}
    buckets = [
        {"min_length": 0, "max_length": 4, "num_examples": 70, "share": 0.7, **test},
        {"min_length": 5, "max_length": 19, "num_examples": 30, "share": 0.3, **test},
        {
            "min_length": 20,
            "max_length": None,
            "num_examples": 0,
            "share": 0.0,
            **{k: math.nan for k in keys},
        },
    ]
    results = {
        "name": name,
        "dataset": dataset,
        "protocol": protocol,
        "model": "sasrec",
        "parameters": 1_234_567,
        "split": {
            "protocol": protocol,
            "train_users": 100,
            "train_events": 900,
            "valid": 100,
            "test": 100,
        },
        "best_epoch": 3,
        "epochs_run": 4,
        "stopped_early": True,
        "train_seconds": 8.0,
        "wall_seconds": 11.0,
        "sequences_per_s": 1002.5,
        "device": "cpu",
        "valid": {k: v + 0.002 for k, v in test.items()},
        "test": test,
        "test_by_history_length": buckets,
        "train_config": {
            "epochs": 4,
            "batch_size": 32,
            "lr": 1e-3,
            "betas": [0.9, 0.98],
            "metric": "ndcg@10",
        },
    }
    results.update(overrides)
    # through JSON as results.json would be (NaN survives as NaN)
    return json.loads(json.dumps(results))


def _row(page: str, label: str) -> list[str]:
    """The metric cells (text, '' when empty) of the table row headed ``label``."""
    match = re.search(rf"<tr class='[a-z]+'><th>{re.escape(label)}</th>(.*?)</tr>", page)
    assert match, f"no row {label!r} in the report"
    cells = re.findall(r"<td class='num'>(?:<b>)?([^<]*)", match.group(1))
    return cells


# -- anchors -------------------------------------------------------------------------------------
def test_anchors_for_returns_the_published_numbers_of_the_protocol() -> None:
    beauty = {a.method: a for a in anchors_for("amazon-beauty", "tiger")}
    assert beauty["TIGER"].metrics == {
        "recall@5": 0.0454,
        "ndcg@5": 0.0321,
        "recall@10": 0.0648,
        "ndcg@10": 0.0384,
    }
    assert "Rajput" in beauty["TIGER"].source
    assert beauty["LC-Rec (genrec)"].metrics["ndcg@10"] == 0.0438
    assert beauty["SASRec (RecBole, measured here)"].metrics["recall@10"] == 0.0833
    # other protocols (history 50, OpenOneRec's own) never enter the tiger table
    assert all(a.protocol == "tiger" for a in beauty.values())
    assert not any("OpenOneRec" in m for m in beauty)

    ml1m = {a.method: a for a in anchors_for("ml-1m", "hstu")}
    assert set(ml1m) == {"SASRec", "BERT4Rec", "GRU4Rec", "HSTU", "HSTU-large"}
    assert ml1m["HSTU-large"].metrics["ndcg@200"] == 0.2771
    assert ml1m["BERT4Rec"].metrics == {"hr@10": 0.2843, "ndcg@10": 0.1537}
    assert [a.method for a in anchors_for("amazon-toys", "tiger")] == [
        "SASRec (as reported by TIGER)",
        "S3-Rec (as reported by TIGER)",
        "TIGER",
    ]
    assert anchors_for("microlens", "hstu") == []


def test_anchor_metric_keys_are_the_protocols() -> None:
    for anchor in ANCHORS:
        if anchor.protocol in ("hstu", "tiger"):
            assert set(anchor.metrics) <= set(get_protocol(anchor.protocol).metric_keys), anchor
        assert anchor.metrics and anchor.source
        assert all(0 < v < 1 for v in anchor.metrics.values()), anchor


def test_anchors_for_hands_out_copies() -> None:
    anchors_for("ml-1m", "hstu")[0].metrics["hr@10"] = 1.0
    assert anchors_for("ml-1m", "hstu")[0].metrics["hr@10"] == 0.2853


# -- the report ------------------------------------------------------------------------------------
def test_report_tiger_beauty_has_anchor_rows_and_three_plots(tmp_path: Path) -> None:
    keys = get_protocol("tiger").metric_keys
    results = _results("beauty-run", "amazon-beauty", "tiger")
    extra = [
        {
            "method": "SASRec baseline (ours)",
            "source": "runs/baseline",
            "metrics": {"recall@10": 0.0777},
        }
    ]
    path = write_report(tmp_path, results, _history(keys=keys), extra_rows=extra)

    assert path == tmp_path / "report.html"
    page = path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind
    # columns: the protocol's metrics in its order; cells: our numbers, then each anchor's
    assert _row(page, "ours (test)") == [f"{results['test'][k]:.4f}" for k in keys]
    assert _row(page, "ours (valid)") == [f"{results['valid'][k]:.4f}" for k in keys]
    assert _row(page, "TIGER") == ["0.0454", "0.0321", "0.0648", "0.0384", ""]  # no MRR published
    assert _row(page, "SASRec (RecBole, measured here)") == [
        "0.0540",
        "0.0318",
        "0.0833",
        "0.0413",
        "",
    ]
    assert _row(page, "LC-Rec (genrec)") == ["0.0525", "0.0352", "0.0791", "0.0438", ""]
    assert _row(page, "SASRec baseline (ours)") == ["", "", "0.0777", "", ""]
    assert "TIGER paper (Rajput et al., NeurIPS 2023)" in page
    assert "phonism/genrec README" in page
    assert "OpenOneRec" not in page and "0.0664" not in page  # other protocols stay out
    assert "ours (test) vs best anchor" in page

    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 3 == page.count(PNG)
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "Empty buckets left out: 20+" in page
    assert "<link" not in page and "<script" not in page and "http://" not in page


def test_report_ml1m_hstu_has_anchor_rows(tmp_path: Path) -> None:
    keys = get_protocol("hstu").metric_keys
    page = write_report(
        tmp_path, _results("ml1m-run", "ml-1m", "hstu"), _history(keys=keys)
    ).read_text()
    assert _row(page, "HSTU-large") == [
        "0.3294",
        "0.1893",
        "0.5935",
        "0.2481",
        "0.7839",
        "0.2771",
        "",
    ]
    assert _row(page, "SASRec") == ["0.2853", "0.1603", "0.5474", "0.2185", "0.7528", "0.2498", ""]
    assert _row(page, "BERT4Rec") == ["0.2843", "0.1537", "", "", "", "", ""]
    assert "meta-recsys/generative-recommenders README, verified 2024-04-15" in page
    assert "0.2776" not in page  # RecBole's own ML-1M protocol is another table
    assert page.count(PNG) == 3


def test_report_escapes_strings_from_the_run(tmp_path: Path) -> None:
    name = "<script>alert('x')</script>"
    results = _results(name, "amazon-beauty", "tiger", device="cuda & <b>")
    results["train_config"]["note"] = '"><img src=x onerror=alert(1)>'
    extra = [{"method": "<i>mine</i>", "metrics": {"ndcg@10": 0.01}}]
    page = write_report(tmp_path, results, [], extra_rows=extra).read_text()
    assert "<script" not in page
    assert (
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    )  # in the title and the header
    assert page.count("&lt;script&gt;") == 2
    assert "cuda &amp; &lt;b&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<i>mine</i>" not in page and "&lt;i&gt;mine&lt;/i&gt;" in page


def test_report_without_history_or_buckets_skips_plots_with_a_note(tmp_path: Path) -> None:
    results = _results("bare", "amazon-beauty", "tiger")
    del results["test_by_history_length"]
    page = write_report(tmp_path, results, []).read_text()
    assert PNG not in page
    assert page.count("Plot skipped.") == 3
    assert "No training-loss records in the history." in page
    assert "No test metrics by history length in the results." in page
    assert _row(page, "TIGER")[0] == "0.0454"  # the table does not need the history

    # a results dict with almost nothing in it still gives a page
    page = write_report(tmp_path, {"name": "empty"}, []).read_text()
    assert (
        "<h1>empty</h1>" in page
        and "No metrics in the results." in page
        and "No published anchor" in page
    )


def test_report_from_epoch_records_alone_and_odd_bucket_keys(tmp_path: Path) -> None:
    keys = get_protocol("hstu").metric_keys
    history = [r for r in _history(keys=keys) if r["type"] == "epoch"]  # TrainResult.history
    buckets = [
        {"lo": 0, "hi": 9, "count": 5, "metrics": {"hr@10": 0.2}},
        "not a bucket",
        {"label": "10+", "n": 3, "hr@10": 0.4},
    ]
    results = _results("odd", "ml-1m", "hstu", test_by_history_length=buckets, best_epoch=None)
    page = write_report(tmp_path, results, history).read_text()
    assert page.count(PNG) == 3  # loss from the epoch records, buckets read from other key names


def test_bucket_labels_open_and_closed_ends() -> None:
    from shortlist.eval.report import _buckets

    raw = [
        {"min_length": 5, "max_length": 9, "num_examples": 2, "hr@10": 0.1},
        {"min_length": 200, "max_length": None, "num_examples": 1, "hr@10": 0.3},
        {"min_length": 200, "max_length": 10**9 - 1, "num_examples": 1, "hr@10": 0.3},  # older runs
    ]
    assert [b.label for b in _buckets(raw, ["hr@10"])] == ["5–9", "200+", "200+"]


def test_report_replaces_an_existing_one(tmp_path: Path) -> None:
    write_report(tmp_path, _results("first", "amazon-beauty", "tiger"), [])
    page = write_report(tmp_path, _results("second", "amazon-beauty", "tiger"), []).read_text()
    assert "<h1>second</h1>" in page and "<h1>first</h1>" not in page


# -- the training log ----------------------------------------------------------------------------
def test_read_history_skips_a_truncated_last_line(tmp_path: Path) -> None:
    records = _history(epochs=2, steps_per_epoch=2)
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "metrics.jsonl").write_text(text + '{"type": "train", "epoch": 3, "st')
    assert read_history(tmp_path) == records
    (tmp_path / "metrics.jsonl").write_text(text + "\n\n")
    assert read_history(tmp_path) == records


def test_read_history_keeps_the_record_a_resumed_run_appended_after_a_cut(tmp_path: Path) -> None:
    first, second = (
        {"type": "train", "epoch": 1, "step": 10, "loss": 1.0, "lr": 0.1},
        {"type": "epoch", "epoch": 1, "step": 10},
    )
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps(first) + "\n" + '{"type": "tr' + json.dumps(second) + "\n"
    )
    assert read_history(tmp_path) == [first, second]


def test_read_history_refuses_a_corrupt_line_in_the_middle(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"type": "train"}\nnot json\n{"type": "train"}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        read_history(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="JSON object"):
        read_history(tmp_path)


def test_read_history_without_a_log_is_empty(tmp_path: Path) -> None:
    assert read_history(tmp_path) == []
