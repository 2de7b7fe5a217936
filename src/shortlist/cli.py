"""The ``shortlist`` command line. Every command is a few lines of the Python API."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
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
    help="Datasets: list, prepare (validate + cache as Parquet), stats.", no_args_is_help=True
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
    """``["n_users=100", "seed=3"]`` -> ``{"n_users": 100, "seed": 3}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        out[key.strip()] = yaml.safe_load(value)
    return out


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


@app.command()
def quickstart(
    cache_dir: CacheDir = None,
    set_: SetOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also write the length histogram to this PNG.")
    ] = None,
) -> None:
    """End to end on the bundled synthetic short-video dataset (for now: generate, prepare, describe)."""
    from shortlist.data.splits import leave_one_out

    start = time.perf_counter()
    try:
        data = _load("synthetic", None, cache_dir, parse_overrides(set_))
    except ValueError as exc:
        _fail(exc)
    console.print(_stats_table(data.stats()))
    split = leave_one_out(data)
    console.print(f"HSTU leave-one-out split: {split.summary()}")
    if plot is not None:
        from shortlist.eval.plots import plot_length_histogram

        plot_length_histogram(data.sequence_lengths(), plot, title=data.name)
        console.print(f"histogram written to {plot}")
    console.print(f"[green]quickstart done[/] in {time.perf_counter() - start:.1f}s")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
