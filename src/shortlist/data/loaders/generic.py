"""Any interaction log in CSV/TSV/Parquet, with a column mapping and optional item/user tables.

Example:
    >>> data = load_log(
    ...     "events.parquet",
    ...     ColumnMapping(user="uid", item="video_id", time="ts", label="click", features=("watch_ms",)),
    ...     items_path="videos.csv", item_key="video_id",
    ... )
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from shortlist.data.build import build_dataset
from shortlist.data.errors import DataValidationError
from shortlist.data.readers import LINE, Col, read_table, require_file
from shortlist.data.schema import ITEM_ID, TIME, USER_ID, InteractionData


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold the user, item, time, rating, label and extra features."""

    user: str = "user_id"
    item: str = "item_id"
    time: str | None = None  # epoch seconds (int/float) or ISO dates; None = keep file order
    rating: str | None = None
    label: str | None = None
    features: tuple[str, ...] = ()  # kept as Float32 when numeric, else as strings


def _separator(path: Path, separator: str | None) -> str:
    if separator is not None:
        return separator
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _maybe_int(frame: pl.DataFrame, col: str) -> pl.DataFrame:
    as_int = frame[col].cast(pl.Int64, strict=False)
    if as_int.null_count() == frame[col].null_count():
        return frame.with_columns(as_int.alias(col))
    return frame


def _side_table(path: Path, key: str, id_col: str, separator: str | None) -> pl.DataFrame:
    path = require_file(path, f"side table keyed by {key!r}")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pl.read_parquet(path)
        offset = 1
    else:
        try:
            frame = pl.read_csv(
                path, separator=_separator(path, separator), infer_schema_length=10_000
            )
        except pl.exceptions.PolarsError as exc:
            raise DataValidationError(
                f"{path.name}: could not parse as a table with a header ({exc})."
            ) from None
        offset = 2
    if key not in frame.columns:
        raise DataValidationError(
            f"{path.name}: missing key column {key!r}; found {frame.columns}."
        )
    frame = (
        frame.rename({key: id_col})
        .with_row_index(LINE, offset=offset)
        .with_columns(pl.col(LINE).cast(pl.Int64))
    )
    return _maybe_int(frame.with_columns(pl.col(id_col).cast(pl.String)), id_col)


def load_log(
    path: str | Path,
    columns: ColumnMapping = ColumnMapping(),
    *,
    name: str | None = None,
    items_path: str | Path | None = None,
    item_key: str | None = None,
    users_path: str | Path | None = None,
    user_key: str | None = None,
    separator: str | None = None,
) -> InteractionData:
    """Load an interaction log; rows keep file order within a user unless ``columns.time`` is given.

    Args:
        path: a .csv/.tsv (with a header) or .parquet file.
        columns: the column mapping.
        items_path / users_path: optional side tables (CSV/TSV/Parquet with a header); their key
            columns default to the log's user/item column names.
    """
    path = Path(path)
    cols = [Col(columns.user), Col(columns.item)]
    if columns.time:
        cols.append(Col(columns.time, "time"))
    for extra in (columns.rating, columns.label):
        if extra:
            cols.append(Col(extra, "float"))
    cols += [Col(f, nullable=True) for f in columns.features]
    frame = read_table(path, cols, separator=_separator(path, separator), what="interaction log")
    rename = {columns.user: USER_ID, columns.item: ITEM_ID}
    if columns.time:
        rename[columns.time] = TIME
    if columns.rating:
        rename[columns.rating] = "rating"
    if columns.label:
        rename[columns.label] = "label"
    keep = [LINE, *[c.name for c in cols]]
    inter = frame.select(keep).rename(rename)
    inter = inter.with_columns(pl.col(USER_ID).cast(pl.String), pl.col(ITEM_ID).cast(pl.String))
    inter = _maybe_int(_maybe_int(inter, USER_ID), ITEM_ID)
    casts = [pl.col(c).cast(pl.Float32) for c in ("rating", "label") if c in inter.columns]
    for feat in columns.features:
        as_float = inter[feat].cast(pl.Float32, strict=False)
        if as_float.null_count() == inter[feat].null_count():
            casts.append(as_float.alias(feat))
    inter = inter.with_columns(casts)
    items = (
        _side_table(Path(items_path), item_key or columns.item, ITEM_ID, separator)
        if items_path
        else None
    )
    users = (
        _side_table(Path(users_path), user_key or columns.user, USER_ID, separator)
        if users_path
        else None
    )
    sources = {"interactions": path.name}
    if items_path:
        sources["items"] = Path(items_path).name
    if users_path:
        sources["users"] = Path(users_path).name
    return build_dataset(
        name or path.stem,
        inter,
        items=items,
        users=users,
        order="time" if columns.time else "sequence",
        sources=sources,
        meta={"source": str(path)},
    )
