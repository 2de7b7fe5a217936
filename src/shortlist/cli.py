"""The ``shortlist`` command line. Every command is a few lines of the Python API."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from shortlist import __version__

app = typer.Typer(
    name="shortlist",
    help="shortlist: from an interaction log and item content to a trained, evaluated and served recommender.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(
    help="Datasets: list, prepare (validate + cache as Parquet), stats, generate (synthetic), pairs (Swing, user-to-item).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

console = Console()
log = logging.getLogger("shortlist")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with a local copy of the dataset (default: $SHORTLIST_DATA, ../shared/data).",
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Cache folder (default: $SHORTLIST_CACHE or ~/.cache/shortlist)."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Loader parameter KEY=VALUE (YAML value); repeatable."),
]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[
            RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
        ],
        force=True,
    )


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    _setup_logging(verbose)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``--set`` pairs as a dict (:func:`shortlist.train.config.parse_overrides`), a bad pair
    reported as a bad ``--set`` parameter."""
    from shortlist.train.config import parse_overrides as parse

    try:
        return parse(pairs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2) from None


def _load(
    name: str,
    data_dir: Path | None,
    cache_dir: Path | None,
    params: dict[str, Any],
    download: bool = True,
    refresh: bool = False,
    log_columns: dict[str, Any] | None = None,
) -> Any:
    from shortlist.data.datasets import load_dataset
    from shortlist.data.loaders.generic import ColumnMapping, load_log

    with console.status(f"Preparing {name} ..."):
        if (
            Path(name).suffix.lower() in (".csv", ".tsv", ".parquet", ".pq")
            and Path(name).is_file()
        ):
            cols = {k: v for k, v in (log_columns or {}).items() if v is not None}
            return load_log(name, ColumnMapping(**cols))
        return load_dataset(
            name,
            data_dir=data_dir,
            cache_dir=cache_dir,
            download=download,
            refresh=refresh,
            **params,
        )


def _stats_table(stats: Any) -> Table:
    table = Table(title=f"{stats.name}", show_header=True, header_style="bold")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    rows = [
        ("users", f"{stats.users:,}"),
        ("items", f"{stats.items:,}"),
        ("interactions", f"{stats.interactions:,}"),
        ("sparsity", f"{stats.sparsity:.4%}"),
        ("order", stats.order),
        ("timestamps", "yes" if stats.has_timestamps else "no"),
        ("events/user min", f"{stats.length_min:,}"),
        ("events/user median", f"{stats.length_median:,.1f}"),
        ("events/user mean", f"{stats.length_mean:,.1f}"),
        ("events/user p90", f"{stats.length_p90:,.1f}"),
        ("events/user max", f"{stats.length_max:,}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


@data_app.command("list")
def data_list(data_dir: DataDir = None) -> None:
    """List the registered datasets and where a local copy was found."""
    from shortlist.data.datasets import list_datasets, locate

    table = Table(show_header=True, header_style="bold")
    for col in ("name", "description", "local copy", "protocols"):
        table.add_column(col, overflow="fold")
    for spec in list_datasets():
        if spec.generated:
            where = "generated"
        else:
            found = locate(spec, data_dir)
            where = (
                str(found)
                if found
                else ("download on first use" if spec.remote else "[yellow]not found[/]")
            )
        table.add_row(spec.name, spec.description, where, ", ".join(spec.protocols))
    console.print(table)


@data_app.command("prepare")
def data_prepare(
    name: Annotated[
        str, typer.Argument(help="A registered dataset name, or a CSV/TSV/Parquet interaction log.")
    ],
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    set_: SetOpt = None,
    no_download: Annotated[
        bool, typer.Option("--no-download", help="Fail instead of downloading.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Re-parse the sources even when cached.")
    ] = False,
    user: Annotated[str | None, typer.Option(help="Log files: the user column.")] = None,
    item: Annotated[str | None, typer.Option(help="Log files: the item column.")] = None,
    time_col: Annotated[
        str | None, typer.Option("--time", help="Log files: the time column.")
    ] = None,
    rating: Annotated[str | None, typer.Option(help="Log files: the rating column.")] = None,
    label: Annotated[str | None, typer.Option(help="Log files: the label column.")] = None,
) -> None:
    """Load, validate and cache a dataset as Parquet; print its size and where it went."""
    start = time.perf_counter()
    try:
        data = _load(
            name,
            data_dir,
            cache_dir,
            parse_overrides(set_),
            download=not no_download,
            refresh=force,
            log_columns={
                "user": user,
                "item": item,
                "time": time_col,
                "rating": rating,
                "label": label,
            },
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"[green]prepared[/] {data!r} in {time.perf_counter() - start:.2f}s")


@data_app.command("stats")
def data_stats(
    name: Annotated[
        str, typer.Argument(help="A registered dataset name, or a CSV/TSV/Parquet interaction log.")
    ],
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    set_: SetOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a sequence-length histogram to this PNG.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Users, items, interactions, sparsity and the sequence-length distribution."""
    try:
        data = _load(name, data_dir, cache_dir, parse_overrides(set_))
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    stats = data.stats()
    if as_json:
        console.print_json(json.dumps(stats.as_dict()))
    else:
        console.print(_stats_table(stats))
    if plot is not None:
        from shortlist.eval.plots import plot_length_histogram

        try:
            plot_length_histogram(data.sequence_lengths(), plot, title=data.name)
        except ValueError as exc:
            _fail(exc)
        console.print(f"histogram written to {plot}")


@data_app.command("generate")
def data_generate(
    out: Annotated[
        Path, typer.Argument(help="Output folder for interactions/items/users Parquet files.")
    ],
    events: Annotated[
        float, typer.Option(help="Approximate number of events (users are sized to reach it).")
    ] = 1e6,
    set_: SetOpt = None,
) -> None:
    """Stream a synthetic log of any size (up to 10^8 events) to Parquet in bounded memory."""
    from rich.progress import Progress

    from shortlist.data.synthetic import SyntheticConfig, count_events, write_parquet

    params = parse_overrides(set_)
    try:
        probe = SyntheticConfig(**{**params, "n_users": 10_000})
        per_user = count_events(probe) / 10_000
        config = SyntheticConfig(**{"n_users": max(1, round(events / per_user)), **params})
    except (TypeError, ValueError) as exc:
        _fail(exc)
    with Progress(console=console) as progress:
        task = progress.add_task("generating", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        files = write_parquet(config, out, progress=report)
    console.print(
        f"[green]wrote[/] {files.n_events:,} events of {files.n_users:,} users on {files.n_items:,} items to {out}"
    )


@data_app.command("pairs")
def data_pairs(
    name: Annotated[str, typer.Argument(help="A registered dataset name.")],
    out: Annotated[
        Path, typer.Option("--out", help="Parquet file for the (trigger, target) pairs.")
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="i2i (Swing neighbours) or u2i (user histories).")
    ] = "i2i",
    topk: Annotated[int, typer.Option(help="Swing neighbours per item.")] = 50,
    window: Annotated[
        int, typer.Option(help="u2i: previous events searched for the trigger.")
    ] = 50,
    data_dir: DataDir = None,
    set_: SetOpt = None,
) -> None:
    """Behaviour pairs for QARM alignment: Swing item-item pairs or user-to-item pairs."""
    from shortlist.data.pairs import SwingConfig, item_to_item_pairs, swing, user_to_item_pairs

    if kind not in ("i2i", "u2i"):
        _fail(ValueError(f"--kind must be 'i2i' or 'u2i', got {kind!r}"))
    try:
        data = _load(name, data_dir, None, parse_overrides(set_))
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    start = time.perf_counter()
    with console.status("Swing item-item similarity ..."):
        neighbours = swing(data, SwingConfig(topk=topk))
    pairs = (
        item_to_item_pairs(neighbours)
        if kind == "i2i"
        else user_to_item_pairs(data, window=window, neighbours=neighbours)
    )
    pairs.save(out)
    console.print(
        f"[green]wrote[/] {len(pairs.trigger):,} {pairs.source} pairs to {out} in {time.perf_counter() - start:.1f}s"
    )


@app.command()
def train(
    config: Annotated[
        Path, typer.Argument(help="Experiment YAML (configs/<dataset>/<model>.yaml).")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override KEY.SUB=VALUE (YAML value); repeatable."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Run folder (default runs/<name>).")
    ] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Start over even if a checkpoint exists.")
    ] = False,
) -> None:
    """Train a model from a YAML config, evaluate the best epoch, write the run folder and report."""
    from shortlist.train.config import load_config
    from shortlist.train.experiment import run_experiment

    overrides = parse_overrides(set_)
    if output_dir is not None:
        overrides["output_dir"] = str(output_dir)
    try:
        cfg = load_config(config, overrides)
        result = run_experiment(cfg, resume=not no_resume)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return
    _print_metrics(cfg.name, result.valid, result.test)
    report = _write_report(result.run_dir)
    console.print(f"[green]run folder[/] {result.run_dir}  (report: {report})")


def _print_metrics(title: str, valid: dict[str, float], test: dict[str, float]) -> None:
    table = Table(title=title, header_style="bold")
    table.add_column("split")
    keys = [k for k in test if k != "mrr"] + (["mrr"] if "mrr" in test else [])
    for key in keys:
        table.add_column(key, justify="right")
    for name, metrics in (("valid", valid), ("test", test)):
        table.add_row(name, *[f"{metrics.get(k, float('nan')):.4f}" for k in keys])
    console.print(table)


def _write_report(run_dir: Path) -> Path | None:
    try:
        from shortlist.eval.report import read_history, write_report
    except ImportError:  # the report module is optional for training
        return None
    results = json.loads((run_dir / "results.json").read_text())
    return write_report(run_dir, results, read_history(run_dir))


def _eval_ctr_run(run_dir: Path, cfg: Any, device: str) -> None:
    """``shortlist eval`` for a CTR run: valid and test AUC / GAUC / log loss of ``best/``."""
    from shortlist.atomic import write_json
    from shortlist.train.ctr_experiment import RESULTS, reevaluate_ctr
    from shortlist.train.experiment import load_ctr_data

    valid, test = reevaluate_ctr(
        run_dir, load_ctr_data(cfg), batch_size=cfg.eval.ranker_batch(), device=device
    )
    path = run_dir / RESULTS
    results = json.loads(path.read_text()) if path.exists() else {"name": cfg.name}
    results.update(valid=valid, test=test)
    write_json(path, results)
    _print_metrics(cfg.name, valid, test)
    console.print(f"metrics written to {path}")


@app.command("eval")
def eval_run(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `shortlist train`.")],
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Re-evaluate a run's best model on its protocol; write results.json, ranks.npz and report.html."""
    from shortlist.atomic import write_json
    from shortlist.models.base import load_model
    from shortlist.train.config import load_config
    from shortlist.train.experiment import RESULTS, evaluate_best, make_split
    from shortlist.train.trainer import resolve_device

    if not (run_dir / "config.yaml").is_file() or not (run_dir / "best").is_dir():
        _fail(
            FileNotFoundError(
                f"{run_dir}: not a run folder (expected config.yaml and best/ from `shortlist train`)."
            )
        )
    try:
        cfg = load_config(run_dir / "config.yaml")
        if cfg.protocol == "ctr":  # a ranker: AUC, GAUC, log loss
            return _eval_ctr_run(run_dir, cfg, device)
        split, _ = make_split(cfg)
        dev = resolve_device(device)
        model = load_model(run_dir / "best").to(dev)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    path = run_dir / RESULTS
    results = json.loads(path.read_text()) if path.exists() else {"name": cfg.name}
    results.update(evaluate_best(model, split, cfg, dev, run_dir))
    write_json(path, results)
    _print_metrics(cfg.name, results["valid"], results["test"])
    report = _write_report(run_dir)
    console.print(f"metrics written to {path}; report: {report}")


@app.command()
def compare(
    runs: Annotated[
        list[str], typer.Argument(help="Run folders of model A (its seeds), or glob patterns.")
    ],
    baseline: Annotated[
        list[str],
        typer.Option("--baseline", "-b", help="Run folders or globs of model B; repeatable."),
    ],
    metric: Annotated[str, typer.Option(help="Metric key: ndcg@10, recall@10, mrr...")] = "ndcg@10",
    split: Annotated[str, typer.Option(help="valid or test.")] = "test",
    boot: Annotated[int, typer.Option(help="Bootstrap draws.")] = 2000,
    confidence: Annotated[float, typer.Option(help="Interval coverage.")] = 0.95,
) -> None:
    """Paired bootstrap of model A against model B on the same examples (each run's ranks.npz)."""
    from shortlist.eval.compare import check_one_model, compare_runs, expand_runs

    try:
        a, b = expand_runs(runs), expand_runs(baseline)
        check_one_model(a, "model A")
        check_one_model(b, "model B (--baseline)")
        c = compare_runs(a, b, metric, split, n_boot=boot, confidence=confidence)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        _fail(exc)
    table = Table(title=f"{metric} on {split} ({c.n_examples} examples)", header_style="bold")
    for col in ("", "runs", "per run", "mean"):
        table.add_column(col, justify="right" if col else "left")
    for name, rs, means, mean in (
        ("A", c.runs_a, c.seed_means_a, c.mean_a),
        ("B", c.runs_b, c.seed_means_b, c.mean_b),
    ):
        table.add_row(name, str(len(rs)), " ".join(f"{m:.4f}" for m in means), f"{mean:.4f}")
    console.print(table)
    console.print(c.summary())


@app.command()
def tokenize(
    dataset: Annotated[
        str, typer.Argument(help="A registered dataset with item text (shortlist data list).")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Output folder: semantic_ids/, report.json, code_usage.png."),
    ] = Path("runs/tokens"),
    encoder: Annotated[
        str, typer.Option(help="Text encoder: tfidf-svd (offline) or sentence-transformers.")
    ] = "tfidf-svd",
    align: Annotated[
        str, typer.Option(help="QARM alignment on behaviour pairs: none, swing, u2i, both.")
    ] = "none",
    quantizer: Annotated[str, typer.Option(help="rq-kmeans, rq-vae or parallel.")] = "rq-kmeans",
    levels: Annotated[int, typer.Option(help="Code levels (before the de-duplication level).")] = 3,
    codebook_size: Annotated[int, typer.Option("--codebook-size", help="Codes per level.")] = 256,
    balanced: Annotated[
        bool, typer.Option(help="rq-kmeans: balanced assignment (higher utilisation).")
    ] = False,
    dim: Annotated[int, typer.Option(help="tfidf-svd: embedding dimensions.")] = 256,
    behaviour: Annotated[
        bool,
        typer.Option(
            help="Fuse content with co-occurrence (PPMI-SVD) embeddings of the training events."
        ),
    ] = False,
    behaviour_weight: Annotated[
        float,
        typer.Option("--behaviour-weight", help="--behaviour: weight of the behaviour block."),
    ] = 2.5,
    data_dir: DataDir = None,
) -> None:
    """Item content -> embeddings -> (+ behaviour) -> (aligned) -> semantic IDs, report and plot."""
    from shortlist.items.behaviour import BehaviourConfig
    from shortlist.items.pipeline import TokenizeConfig, write_outputs
    from shortlist.items.pipeline import tokenize as run_tokenize

    try:
        params = {"balanced": True} if balanced and quantizer == "rq-kmeans" else {}
        cfg = TokenizeConfig(
            encoder=encoder,
            align=align,
            quantizer=quantizer,
            levels=levels,  # type: ignore[arg-type]
            codebook_size=codebook_size,
            quantizer_params=params,
            encoder_params={"dim": dim} if encoder == "tfidf-svd" else {},
            behaviour=BehaviourConfig(weight=behaviour_weight) if behaviour else None,
        )
        data = _load(dataset, data_dir, None, {})
        with console.status(f"Tokenizing {data.num_items:,} items ..."):
            result = run_tokenize(data, cfg)
        folder = write_outputs(result, out)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        _fail(exc)
    m = result.report["metrics"]
    table = Table(title=f"{dataset}: semantic IDs", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in m.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, float) else f"{value:.4f}")
    console.print(table)
    console.print(f"[green]wrote[/] {folder}")


@app.command()
def quickstart(
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override KEY.SUB=VALUE; repeatable.")
    ] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Run folder.")] = Path(
        "runs/quickstart"
    ),
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also write the length histogram to this PNG.")
    ] = None,
) -> None:
    """End to end on the bundled synthetic short-video dataset: generate and prepare the data, train
    SASRec, evaluate it under the HSTU protocol, write the run folder and an HTML report."""
    from shortlist.train.config import apply_overrides, parse_config
    from shortlist.train.experiment import make_split, run_experiment
    from shortlist.train.quickstart import QUICKSTART

    start = time.perf_counter()
    try:
        raw = apply_overrides(QUICKSTART, {"output_dir": str(output_dir), **parse_overrides(set_)})
        cfg = parse_config(raw, "quickstart")
        split, data = make_split(cfg)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(_stats_table(data.stats()))
    console.print(f"HSTU leave-one-out split: {split.summary()}")
    if plot is not None:
        from shortlist.eval.plots import plot_length_histogram

        plot_length_histogram(data.sequence_lengths(), plot, title=data.name)
        console.print(f"histogram written to {plot}")
    result = run_experiment(cfg, resume=False)
    _print_metrics(f"{cfg.name} (best epoch {result.train.best_epoch})", result.valid, result.test)
    report = _write_report(result.run_dir)
    console.print(
        f"[green]quickstart done[/] in {time.perf_counter() - start:.1f}s; run folder {result.run_dir}"
        + (f", report {report}" if report else "")
    )


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
