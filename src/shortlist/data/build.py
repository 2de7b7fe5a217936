"""Turn raw frames (raw user/item IDs) into a validated, integer-indexed :class:`InteractionData`.

Every loader ends here, so the checks below hold for every dataset: no duplicate IDs in the side
tables, no interaction that names an item or user missing from a side table that was given, no null
IDs, and interactions sorted per user by time or original order.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from shortlist.data.errors import DataValidationError
from shortlist.data.schema import ITEM, ITEM_ID, TIME, USER, USER_ID, InteractionData, Order

log = logging.getLogger(__name__)

LINE = "_line"  # optional column: the 1-based source line of each raw row, used in error messages
ROW = "_row"


def _where(sources: dict[str, str], table: str) -> str:
    return sources.get(table, table)


def _check_unique(frame: pl.DataFrame, id_col: str, where: str) -> None:
    repeats = frame.filter(~pl.col(id_col).is_first_distinct())
    if repeats.height:
        bad = repeats.row(0, named=True)
        if LINE in frame.columns:
            first_line = frame.filter(pl.col(id_col) == bad[id_col])[LINE][0]
            at = f" line {bad[LINE]}"
            first = f", first seen on line {first_line}"
        else:
            at = first = ""
        raise DataValidationError(
            f"{where}{at}: duplicate {id_col} {bad[id_col]!r}{first} "
            f"({repeats[id_col].n_unique()} IDs appear more than once); each ID must appear once."
        )


def _check_not_null(frame: pl.DataFrame, col: str, where: str) -> None:
    nulls = frame.with_row_index("_i").filter(pl.col(col).is_null())
    if nulls.height:
        first = nulls.row(0, named=True)
        line = f"line {first[LINE]}" if LINE in nulls.columns else f"row {first['_i'] + 1}"
        raise DataValidationError(f"{where} {line}: column {col!r} is empty; an ID is required.")


def _check_known(
    inter: pl.DataFrame, table: pl.DataFrame, id_col: str, where: str, table_where: str
) -> None:
    unknown = inter.join(table.select(id_col), on=id_col, how="anti")
    if unknown.height:
        first = unknown.row(0, named=True)
        line = f" line {first[LINE]}" if LINE in unknown.columns else ""
        raise DataValidationError(
            f"{where}{line}: unknown {id_col} {first[id_col]!r}, not listed in {table_where} "
            f"({unknown.height:,} interactions name {unknown[id_col].n_unique():,} unknown IDs)."
        )


def build_dataset(
    name: str,
    interactions: pl.DataFrame,
    *,
    items: pl.DataFrame | None = None,
    users: pl.DataFrame | None = None,
    order: Order,
    sources: dict[str, str] | None = None,
    keep_unseen_items: bool = False,
    meta: dict[str, Any] | None = None,
) -> InteractionData:
    """Validate and re-index raw frames.

    Args:
        name: dataset name, used in messages.
        interactions: one row per event with ``user_id``, ``item_id``, optionally ``timestamp``
            (Int64 seconds), ``_line`` (source line, for messages) and any feature columns; rows in
            source order.
        items: optional item side table with a unique ``item_id`` column.
        users: optional user side table with a unique ``user_id`` column.
        order: what a user's row order means (see :mod:`shortlist.data.schema`).
        sources: file names per table (``{"interactions": "u.data", ...}``) for error messages.
        keep_unseen_items: keep items of the side table that no interaction names (an items-only
            catalogue such as MicroLens); by default the catalogue is the set of interacted items.

    Returns:
        The canonical dataset: users 0..U-1 and items 1..N in order of first appearance.
    """
    sources = sources or {}
    where = _where(sources, "interactions")
    for col in (USER_ID, ITEM_ID):
        if col not in interactions.columns:
            raise DataValidationError(
                f"{where}: missing column {col!r}; found {interactions.columns}."
            )
        _check_not_null(interactions, col, where)
    if order == "time" and TIME not in interactions.columns:
        raise DataValidationError(f"{where}: order='time' needs a {TIME!r} column.")

    if items is not None:
        _check_not_null(items, ITEM_ID, _where(sources, "items"))
        _check_unique(items, ITEM_ID, _where(sources, "items"))
        items = items.with_columns(pl.col(ITEM_ID).cast(interactions[ITEM_ID].dtype, strict=False))
        _check_known(interactions, items, ITEM_ID, where, _where(sources, "items"))
    if users is not None:
        _check_not_null(users, USER_ID, _where(sources, "users"))
        _check_unique(users, USER_ID, _where(sources, "users"))
        users = users.with_columns(pl.col(USER_ID).cast(interactions[USER_ID].dtype, strict=False))
        _check_known(interactions, users, USER_ID, where, _where(sources, "users"))

    inter = interactions.with_row_index(ROW)
    # Dense indices in order of first appearance (deterministic, and for Amazon Beauty equal to
    # the S3-Rec/P5 numbering of Beauty.txt).
    item_order = inter.select(ITEM_ID).unique(maintain_order=True)
    if keep_unseen_items and items is not None:
        unseen = items.select(ITEM_ID).join(item_order, on=ITEM_ID, how="anti")
        item_order = pl.concat([item_order, unseen])
    item_map = item_order.with_row_index(ITEM, offset=1).with_columns(pl.col(ITEM).cast(pl.Int32))
    user_map = (
        inter.select(USER_ID)
        .unique(maintain_order=True)
        .with_row_index(USER)
        .with_columns(pl.col(USER).cast(pl.Int32))
    )
    inter = inter.join(user_map, on=USER_ID, how="left").join(item_map, on=ITEM_ID, how="left")
    sort_by = [USER, TIME, ROW] if order == "time" else [USER, ROW]
    inter = inter.sort(sort_by, nulls_last=True)
    front = [USER, ITEM] + ([TIME] if TIME in inter.columns else [])
    rest = [c for c in inter.columns if c not in (*front, USER_ID, ITEM_ID, ROW, LINE)]
    inter = inter.select(*front, *rest)

    item_table = item_map.select(ITEM, ITEM_ID)
    if items is not None:
        item_table = item_table.join(
            items.drop(LINE, strict=False), on=ITEM_ID, how="left", maintain_order="left"
        )
    user_table = user_map.select(USER, USER_ID)
    if users is not None:
        user_table = user_table.join(
            users.drop(LINE, strict=False), on=USER_ID, how="left", maintain_order="left"
        )

    data = InteractionData(
        name=name,
        interactions=inter,
        items=item_table,
        users=user_table,
        order=order,
        meta=dict(meta or {}),
    )
    log.debug("built %r", data)
    return data
