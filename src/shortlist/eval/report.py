"""A run's report: one self-contained HTML page beside ``results.json``.

The page (``runs/<name>/report.html``) holds, top to bottom:

1. a header: run name, dataset, protocol, model, parameters, device, epochs run and best epoch,
   training time and throughput;
2. the protocol's metrics table: our test and validation metrics, any extra rows, then every
   published anchor for that dataset and protocol (:mod:`shortlist.eval.anchors`) with its source;
   the best number of each column in bold, and our test result relative to the best anchor;
3. plots, embedded as base64 PNG: training loss by step, validation metrics by epoch (best epoch
   marked), test metrics by history-length bucket (grouped bars with example counts); a plot whose
   data is missing is replaced by a note;
4. the training configuration (and the model's, when ``config.yaml`` is in the run folder).

No external assets (inline CSS, images as data URIs), so the file can be mailed or attached as is.
Every string from a run (names, config values, sources) is HTML-escaped.

Inputs are what :mod:`shortlist.train.experiment` writes: ``results`` is ``results.json`` loaded,
``history`` the records of ``metrics.jsonl`` (:func:`read_history`), i.e. ``{"type": "train", "epoch",
"step", "loss", "lr"}`` and ``{"type": "epoch", "epoch", "step", "train_s", "sequences_per_s",
"loss", "valid": {metric: value}}``. Missing keys leave cells empty instead of failing.

Example:
    >>> run_dir = Path("runs/sasrec-beauty")
    >>> results = json.loads((run_dir / "results.json").read_text())
    >>> write_report(run_dir, results, read_history(run_dir))
    PosixPath('runs/sasrec-beauty/report.html')
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shortlist.atomic import write_text
from shortlist.eval.anchors import Anchor, anchors_for
from shortlist.eval.protocols import LEGACY_OPEN_END, PROTOCOLS, EvalProtocol

log = logging.getLogger(__name__)

__all__ = ["HISTORY_FILE", "REPORT_FILE", "read_history", "render_report", "write_report"]

REPORT_FILE = "report.html"
HISTORY_FILE = "metrics.jsonl"

# one colour per metric column, shared by the validation and bucket plots
_PALETTE = ("#3b6ea5", "#c0392b", "#2e8b57", "#e67e22", "#8e44ad", "#16a085", "#7f8c8d", "#d35400")


# -- reading the training log ----------------------------------------------------------------------
def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` in file order (``[]`` when there is no log).

    A killed run can leave a truncated last line: it is skipped with a warning. A resumed run
    appends after such a line, so the cut record and the next one share a line; the complete
    record at its end is kept. Any other line that is not a JSON object raises ValueError.
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            record = _record_after_cut(line)
            if record is not None:
                log.warning("%s:%d: dropped a truncated record before a complete one", path, i + 1)
            elif i == last:
                log.warning("%s:%d: skipped a truncated last line (killed run?)", path, i + 1)
                continue
            else:
                raise ValueError(f"{path}:{i + 1} is not a JSON record: {line[:80]!r}") from err
        if not isinstance(record, dict):
            raise ValueError(
                f"{path}:{i + 1} must hold a JSON object. Got {type(record).__name__}."
            )
        records.append(record)
    return records


def _record_after_cut(line: str) -> dict[str, Any] | None:
    """The complete record that follows a truncated one on the same line, if any."""
    start = line.rfind('{"type"')
    if start <= 0:
        return None
    try:
        record = json.loads(line[start:])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


# -- small helpers -------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (missing, NaN, a string, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt_metric(value: Any) -> str:
    v = _number(value)
    return "" if v is None else f"{v:.4f}"


def _fmt_count(value: Any) -> str:
    v = _number(value)
    if v is None:
        return "–"
    if abs(v) >= 1e6:
        return f"{int(v):,} ({v / 1e6:.2f}M)"
    return f"{v:,.0f}"


def _fmt_duration(seconds: Any) -> str:
    s = _number(seconds)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(round(s), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s" if hours else f"{minutes}m {sec:02d}s"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def _metric_dict(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if _number(v) is not None}


def _ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for key in group:
            seen.setdefault(key, None)
    return list(seen)


def _protocol(name: Any) -> EvalProtocol | None:
    return PROTOCOLS.get(name) if isinstance(name, str) and name in PROTOCOLS else None


# -- the metrics table ---------------------------------------------------------------------------
@dataclass
class _Row:
    label: str
    metrics: dict[str, float]
    source: str = ""
    kind: str = "anchor"  # "test", "valid", "extra" or "anchor"


def _extra_row(row: Mapping[str, Any]) -> _Row:
    if not isinstance(row, Mapping):
        raise TypeError(f"extra_rows must be dicts. Got {type(row).__name__} instead.")
    label = row.get("method", row.get("label", row.get("name", "extra")))
    metrics = _metric_dict(row["metrics"]) if "metrics" in row else _metric_dict(row)
    return _Row(str(label), metrics, str(row.get("source", "")), "extra")


def _columns(proto: EvalProtocol | None, rows: Sequence[_Row]) -> list[str]:
    first = list(proto.metric_keys) if proto is not None else []
    return _ordered_union([first, *(r.metrics for r in rows)])


def _metrics_table(rows: Sequence[_Row], columns: Sequence[str]) -> str:
    # the best value of each column among results on the test split (validation is not comparable)
    best: dict[str, float] = {}
    for col in columns:
        values = [r.metrics[col] for r in rows if r.kind != "valid" and col in r.metrics]
        if len(values) > 1:
            best[col] = max(values)
    head = "".join(f"<th class='num'>{_e(c)}</th>" for c in columns)
    out = [
        f"<table class='metrics'><thead><tr><th>row</th>{head}<th>source</th></tr></thead><tbody>"
    ]
    for r in rows:
        cells = []
        for col in columns:
            v = r.metrics.get(col)
            strong = col in best and v is not None and r.kind != "valid" and v == best[col]
            text = _e(_fmt_metric(v))
            cells.append(f"<td class='num'>{f'<b>{text}</b>' if strong else text}</td>")
        out.append(
            f"<tr class='{_e(r.kind)}'><th>{_e(r.label)}</th>{''.join(cells)}"
            f"<td class='source'>{_e(r.source)}</td></tr>"
        )
    anchors = [r for r in rows if r.kind == "anchor"]
    ours = next((r for r in rows if r.kind == "test"), None)
    if anchors and ours is not None:
        cells = []
        for col in columns:
            ref = max((a.metrics[col] for a in anchors if col in a.metrics), default=None)
            mine = ours.metrics.get(col)
            if ref is None or mine is None or ref == 0:
                cells.append("<td></td>")
                continue
            rel = (mine - ref) / ref
            cls = "up" if rel >= 0 else "down"
            cells.append(f"<td class='num {cls}'>{_e(f'{rel:+.1%}')}</td>")
        out.append(
            f"<tr class='delta'><th>ours (test) vs best anchor</th>{''.join(cells)}"
            "<td class='source'>relative difference to the best anchor of each column</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _protocol_note(name: str, proto: EvalProtocol | None) -> str:
    if proto is None:
        return f"Protocol {name!r} is not a registered evaluation protocol."
    history = (
        f"the {proto.max_history} most recent items" if proto.max_history else "the model's window"
    )
    masked = "masked" if proto.exclude_history else "not masked"
    return (
        f"Protocol {proto.name}: {', '.join(proto.metric_keys)}; history {history}; seen items {masked}; "
        f"candidates: all items; ties {proto.ties}. Source of the protocol: {proto.anchor}. "
        "A number is comparable with an anchor only under the same protocol."
    )


# -- plots ---------------------------------------------------------------------------------------
def _figure(width: float = 8.0, height: float = 3.6) -> Any:
    # matplotlib.figure.Figure directly: no pyplot state, no global backend switch
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig


def _png_data_uri(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _style(ax: Any) -> None:
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _last_per_key(records: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """One record per ``key`` value (the last one: a resumed run repeats steps), sorted by it."""
    kept: dict[float, dict[str, Any]] = {}
    for r in records:
        k = _number(r.get(key))
        if k is not None:
            kept[k] = r
    return [kept[k] for k in sorted(kept)]


def _loss_plot(history: Sequence[dict[str, Any]]) -> str | None:
    train = [r for r in history if r.get("type") == "train" and _number(r.get("loss")) is not None]
    epochs = _last_per_key((r for r in history if r.get("type") == "epoch"), "epoch")
    points = _last_per_key(train, "step")
    if not points:  # only epoch summaries: their last-batch loss, by step
        points = [r for r in _last_per_key(epochs, "step") if _number(r.get("loss")) is not None]
    if not points:
        return None
    steps = [float(r["step"]) for r in points]
    loss = [float(r["loss"]) for r in points]
    fig = _figure()
    ax = fig.subplots()
    _style(ax)
    ax.plot(
        steps,
        loss,
        color=_PALETTE[0],
        linewidth=1.0,
        alpha=0.45 if len(loss) > 30 else 1.0,
        marker="" if len(loss) > 30 else "o",
        markersize=3,
        label="loss",
    )
    if len(loss) > 30:  # exponential moving average for the trend
        alpha, smooth, ema = 0.1, [], loss[0]
        for v in loss:
            ema = alpha * v + (1 - alpha) * ema
            smooth.append(ema)
        ax.plot(steps, smooth, color=_PALETTE[0], linewidth=2.0, label="loss (EMA 0.1)")
    for r in epochs:
        step = _number(r.get("step"))
        if step is not None:
            ax.axvline(step, color="#999999", linestyle=":", linewidth=0.8)
    handles, labels = ax.get_legend_handles_labels()
    lr = [_number(r.get("lr")) for r in points]
    if all(v is not None for v in lr) and len(set(lr)) > 1:  # a schedule: show it on its own axis
        ax2 = ax.twinx()
        (line,) = ax2.plot(steps, lr, color="#999999", linewidth=1.0, linestyle="--")
        ax2.set_ylabel("learning rate", color="#777777")
        ax2.spines["top"].set_visible(False)
        ax2.tick_params(axis="y", colors="#777777")
        handles, labels = [*handles, line], [*labels, "learning rate (right axis)"]
    ax.set_xlabel("step (dotted lines: end of each epoch)")
    ax.set_ylabel("training loss")
    ax.legend(
        handles,
        labels,
        frameon=False,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        fontsize=9,
    )
    return _png_data_uri(fig)


def _valid_plot(
    history: Sequence[dict[str, Any]], columns: Sequence[str], best_epoch: int | None
) -> str | None:
    epochs = [
        r
        for r in _last_per_key((r for r in history if r.get("type") == "epoch"), "epoch")
        if _metric_dict(r.get("valid"))
    ]
    if not epochs:
        return None
    keys = _ordered_union([columns, *(_metric_dict(r["valid"]) for r in epochs)])
    keys = [k for k in keys if any(k in _metric_dict(r["valid"]) for r in epochs)]
    fig = _figure()
    ax = fig.subplots()
    _style(ax)
    for i, key in enumerate(keys):
        xs = [float(r["epoch"]) for r in epochs if key in _metric_dict(r["valid"])]
        ys = [float(r["valid"][key]) for r in epochs if key in _metric_dict(r["valid"])]
        color = _PALETTE[i % len(_PALETTE)]
        ax.plot(xs, ys, color=color, linewidth=1.6, marker="o", markersize=3.5, label=key)
        if best_epoch is not None and best_epoch in xs:
            ax.plot(
                [best_epoch],
                [ys[xs.index(best_epoch)]],
                marker="*",
                markersize=12,
                color=color,
                markeredgecolor="black",
                markeredgewidth=0.5,
                linestyle="none",
            )
    if best_epoch is not None:
        ax.axvline(
            best_epoch,
            color="#333333",
            linestyle="--",
            linewidth=0.9,
            label=f"best epoch {best_epoch}",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation metric")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    return _png_data_uri(fig)


@dataclass
class _Bucket:
    label: str
    num_examples: int | None
    share: float | None
    metrics: dict[str, float]


_BOUND_KEYS = (
    ("min_length", "lo", "low", "min", "start"),
    ("max_length", "hi", "high", "max", "end"),
)
_COUNT_KEYS = ("num_examples", "count", "n", "examples", "size")


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((row[k] for k in keys if k in row), None)


def _buckets(raw: Any, columns: Sequence[str]) -> list[_Bucket]:
    """Rows of ``results["test_by_history_length"]``, read defensively (the format may evolve)."""
    if not isinstance(raw, list | tuple):
        return []
    buckets = []
    for row in raw:
        if not isinstance(row, Mapping):
            continue
        lo, hi = (_number(_first(row, keys)) for keys in _BOUND_KEYS)
        if isinstance(row.get("label"), str):
            label = row["label"]
        elif lo is None:
            label = f"≤ {hi:g}" if hi is not None else "?"
        elif hi is None or hi >= LEGACY_OPEN_END:
            label = f"{lo:g}+"
        else:
            label = f"{lo:g}" if hi == lo else f"{lo:g}–{hi:g}"
        count = _number(_first(row, _COUNT_KEYS))
        values = _metric_dict(row["metrics"] if isinstance(row.get("metrics"), Mapping) else row)
        metrics = {k: values[k] for k in columns if k in values}
        if not metrics:  # unknown columns: anything that looks like a metric key
            metrics = {k: v for k, v in values.items() if "@" in k or k == "mrr"}
        buckets.append(
            _Bucket(
                label, None if count is None else int(count), _number(row.get("share")), metrics
            )
        )
    return buckets


def _bucket_plot(buckets: Sequence[_Bucket], columns: Sequence[str]) -> str | None:
    shown = [b for b in buckets if b.metrics and b.num_examples != 0]
    if not shown:
        return None
    keys = _ordered_union(
        [[c for c in columns if any(c in b.metrics for b in shown)], *(b.metrics for b in shown)]
    )
    total = sum(b.num_examples or 0 for b in shown)
    fig = _figure(8.0, 4.0)
    ax = fig.subplots()
    _style(ax)
    ax.grid(False, axis="x")
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        xs = [j - 0.4 + width * (i + 0.5) for j, b in enumerate(shown) if key in b.metrics]
        ys = [b.metrics[key] for b in shown if key in b.metrics]
        ax.bar(xs, ys, width=width, color=_PALETTE[i % len(_PALETTE)], label=key)
    ticks = []
    for b in shown:
        if b.num_examples is None:
            ticks.append(b.label)
            continue
        share = b.share if b.share is not None else (b.num_examples / total if total else None)
        share_text = (
            "" if share is None else f"\n{share:.0%}" if share >= 0.095 else f"\n{share:.1%}"
        )
        ticks.append(f"{b.label}\nn={b.num_examples:,}{share_text}")
    ax.set_xticks(range(len(shown)), ticks, fontsize=8.5)
    ax.set_xlabel("history length (items) of the test example")
    ax.set_ylabel("test metric")
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    return _png_data_uri(fig)


# -- the page ------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222;
       max-width: 1120px; margin: 24px auto; padding: 0 20px; }
h1 { font-size: 24px; margin: 0 0 2px; word-break: break-all; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.subtitle { color: #555; margin-bottom: 14px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 8px; }
.fact { background: #f6f8fa; border: 1px solid #e3e7eb; border-radius: 6px; padding: 6px 10px; }
.fact.wide { grid-column: span 2; }
.fact .k { color: #666; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.fact .v { font-size: 15px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #ccc; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.metrics { width: 100%; }
table.metrics tbody th { font-weight: normal; white-space: nowrap; }
tr.test { background: #eaf2fb; } tr.test th { font-weight: 600; }
tr.valid { background: #f5f9fd; color: #445; }
tr.extra { background: #fbf8ef; }
tr.delta { border-top: 2px solid #ccc; font-size: 13px; }
td.up { color: #1e7b34; } td.down { color: #b03a2e; }
td.source { color: #666; font-size: 12px; }
.note { color: #666; font-size: 13px; }
.skipped { color: #8a6d3b; background: #fcf8e3; border: 1px solid #f3e3b5; border-radius: 4px;
           padding: 6px 10px; }
figure { margin: 10px 0 18px; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: 13px; }
.configs { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.configs table td:first-child { color: #555; }
.configs h3 { font-size: 14px; margin: 0 0 4px; }
footer { color: #888; font-size: 12px; margin-top: 30px; }
"""


def _fact(key: str, value: str, *, wide: bool = False) -> str:
    cls = "fact wide" if wide else "fact"
    return (
        f"<div class='{cls}'><div class='k'>{_e(key)}</div><div class='v'>{_e(value)}</div></div>"
    )


def _header(
    results: Mapping[str, Any], epochs: Sequence[dict[str, Any]], best_epoch: int | None
) -> str:
    name = results.get("name", "(unnamed run)")
    subtitle = " · ".join(
        f"{k} {results[k]}" for k in ("dataset", "protocol", "model") if results.get(k) is not None
    )
    speed = _number(results.get("sequences_per_s"))
    if speed is None:  # fall back on the epochs' throughput
        speeds = [v for v in (_number(r.get("sequences_per_s")) for r in epochs) if v is not None]
        speed = sum(speeds) / len(speeds) if speeds else None
    epochs_run = results.get("epochs_run", len(epochs) or None)
    stopped = results.get("stopped_early")
    epoch_text = f"{epochs_run if epochs_run is not None else '–'} run, best {best_epoch or '–'}"
    if stopped:
        epoch_text += ", stopped early"
    facts = [
        _fact("parameters", _fmt_count(results.get("parameters"))),
        _fact("device", str(results.get("device", "–"))),
        _fact("epochs", epoch_text),
        _fact("training time", _fmt_duration(results.get("train_seconds"))),
        _fact("wall time", _fmt_duration(results.get("wall_seconds"))),
        _fact("sequences / s", _fmt_count(speed)),
    ]
    split = results.get("split")
    if isinstance(split, Mapping):
        parts = [
            f"{k} {_fmt_count(split[k])}"
            for k in ("train_users", "train_events", "valid", "test")
            if _number(split.get(k)) is not None
        ]
        if _number(split.get("max_history")) is not None:
            parts.append(f"history ≤ {split['max_history']}")
        if parts:
            facts.append(_fact("split", ", ".join(parts), wide=True))
    return (
        f"<h1>{_e(name)}</h1><div class='subtitle'>{_e(subtitle)}</div>"
        f"<div class='facts'>{''.join(facts)}</div>"
    )


def _config_table(title: str, config: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(_fmt_value(v))}</td></tr>" for k, v in config.items()
    )
    return f"<div><h3>{_e(title)}</h3><table><tbody>{rows}</tbody></table></div>"


def _split_config(config: Mapping[str, Any], parts: int) -> list[dict[str, Any]]:
    items = list(config.items())
    size = max(1, math.ceil(len(items) / parts))
    return [dict(items[i : i + size]) for i in range(0, len(items), size)]


def _figure_html(uri: str | None, alt: str, caption: str, missing: str) -> str:
    if uri is None:
        return f"<p class='skipped'>{_e(missing)} Plot skipped.</p>"
    return (
        f"<figure><img src='{uri}' alt='{_e(alt)}'><figcaption>{_e(caption)}</figcaption></figure>"
    )


def _best_epoch(results: Mapping[str, Any], epochs: Sequence[dict[str, Any]]) -> int | None:
    best = _number(results.get("best_epoch"))
    if best is not None and best >= 1:
        return int(best)
    train_config = results.get("train_config")
    metric = train_config.get("metric") if isinstance(train_config, Mapping) else None
    scored = [
        (float(r["valid"][metric]), int(r["epoch"]))
        for r in epochs
        if metric
        and _number(_metric_dict(r.get("valid")).get(metric)) is not None
        and _number(r.get("epoch")) is not None
    ]
    return max(scored)[1] if scored else None  # ties: the later epoch


def render_report(
    results: Mapping[str, Any],
    history: Sequence[dict[str, Any]],
    *,
    extra_rows: Sequence[Mapping[str, Any]] | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> str:
    """The report page as an HTML string (see the module docstring); :func:`write_report` saves it.

    Args:
        results: ``results.json`` of a run, loaded.
        history: records of ``metrics.jsonl`` (:func:`read_history`); epoch records alone also work.
        extra_rows: more rows for the metrics table, between ours and the anchors, e.g. a
            baseline run side by side: ``{"method": str, "source": str, "metrics": {key: value}}``
            (metric keys may also sit at the top level of the dict).
        model_config: the model's hyper-parameters, shown beside the training config.
    """
    if not isinstance(results, Mapping):
        raise TypeError(
            f"results must be a dict (results.json). Got {type(results).__name__} instead."
        )
    history = [r for r in history if isinstance(r, Mapping)]
    epochs = _last_per_key((r for r in history if r.get("type") == "epoch"), "epoch")
    best_epoch = _best_epoch(results, epochs)
    dataset, protocol = str(results.get("dataset", "")), str(results.get("protocol", ""))
    proto = _protocol(protocol)

    rows = [
        _Row("ours (test)", _metric_dict(results.get("test")), "this run, best epoch", "test"),
        _Row("ours (valid)", _metric_dict(results.get("valid")), "this run, best epoch", "valid"),
    ]
    rows += [_extra_row(r) for r in extra_rows or ()]
    anchors: list[Anchor] = anchors_for(dataset, protocol)
    rows += [_Row(a.method, dict(a.metrics), a.source, "anchor") for a in anchors]
    columns = _columns(proto, rows)
    if not anchors:
        anchor_note = f"No published anchor for {dataset or '?'} under protocol {protocol or '?'}."
    else:
        anchor_note = (
            f"{len(anchors)} anchors for {dataset} under protocol {protocol} (ANCHORS.md)."
        )

    buckets = _buckets(results.get("test_by_history_length"), columns)
    empty = [b.label for b in buckets if b.num_examples == 0 or not b.metrics]
    bucket_caption = (
        "Test metrics of the best model by history length; n = test examples in the bucket."
    )
    if empty:
        bucket_caption += f" Empty buckets left out: {', '.join(empty)}."
    plots = [
        _figure_html(
            _loss_plot(history),
            "training loss by step",
            "Training loss by step, as logged every log_every steps.",
            "No training-loss records in the history.",
        ),
        _figure_html(
            _valid_plot(history, columns, best_epoch),
            "validation metrics by epoch",
            "Validation metrics by epoch; the star and dashed line mark the best epoch "
            "(the one the test metrics come from).",
            "No validation metrics in the history.",
        ),
        _figure_html(
            _bucket_plot(buckets, columns),
            "test metrics by history length",
            bucket_caption,
            "No test metrics by history length in the results.",
        ),
    ]

    configs = []
    train_config = results.get("train_config")
    if isinstance(train_config, Mapping) and train_config:
        for i, part in enumerate(_split_config(train_config, 2)):
            configs.append(_config_table("training" if i == 0 else "training (cont.)", part))
    if model_config:
        configs.append(_config_table("model", model_config))
    config_html = (
        f"<div class='configs'>{''.join(configs)}</div>"
        if configs
        else "<p class='skipped'>No training config in the results.</p>"
    )

    name = results.get("name", "(unnamed run)")
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join([
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(name)} · shortlist report</title>",
        f"<style>{_CSS}</style></head><body>",
        _header(results, epochs, best_epoch),
        f"<h2>Metrics: protocol {_e(protocol or '?')}</h2>",
        _metrics_table(rows, columns) if columns else "<p class='skipped'>No metrics in the results.</p>",
        f"<p class='note'>{_e(anchor_note)} {_e(_protocol_note(protocol, proto))}</p>",
        "<h2>Training</h2>", plots[0], plots[1],
        "<h2>Test metrics by history length</h2>", plots[2],
        "<h2>Configuration</h2>", config_html,
        f"<footer>Generated by shortlist on {_e(generated)}.</footer>",
        "</body></html>",
    ])  # fmt: skip


def write_report(
    run_dir: Path,
    results: dict[str, Any],
    history: list[dict[str, Any]],
    *,
    extra_rows: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``run_dir/report.html`` (atomically: temporary file + rename) and return its path.

    The model's hyper-parameters come from ``run_dir/config.yaml`` (its ``model`` section) when
    the file exists. See :func:`render_report` for the arguments.
    """
    run_dir = Path(run_dir)
    model_config = None
    config_path = run_dir / "config.yaml"
    if config_path.exists():
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        if isinstance(config, Mapping) and isinstance(config.get("model"), Mapping):
            model_config = dict(config["model"])
    page = render_report(results, history, extra_rows=extra_rows, model_config=model_config)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / REPORT_FILE
    write_text(path, page)
    log.info("report written to %s", path)
    return path
