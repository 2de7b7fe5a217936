"""Amazon review datasets.

amazon-beauty (Amazon 2014 5-core Beauty; He & McAuley, WWW 2016), two layouts:
- official: ``reviews_Beauty_5.json(.gz)`` (one JSON object per line: reviewerID, asin,
  unixReviewTime, overall) and ``meta_Beauty.json(.gz)`` (one Python-literal dict per line: asin,
  title, categories, brand, price). Each user's reviews are ordered by ``unixReviewTime`` (ties keep
  file order), as the P5/S3-Rec preprocessing does.
- sequences: ``user_sequence_asin.txt`` (``reviewerID ASIN1 ASIN2 ...`` in chronological order; the
  P5/IDGenRec file) and ``items_meta.jsonl`` (asin, title, categories). No timestamps, so the order
  is ``"sequence"``. Item indices follow first appearance, which equals the S3-Rec numbering of
  ``Beauty.txt``.

amazon-scientific (Amazon 2018 Industrial & Scientific in the LC-Rec format):
``Scientific.inter.json`` (``{user: [item, ...]}`` chronological) and ``Scientific.item.json``
(``{item: {title, description, brand, categories}}``).
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from shortlist.data.build import build_dataset
from shortlist.data.errors import DataValidationError
from shortlist.data.readers import LINE, read_json, read_jsonl, require_file
from shortlist.data.schema import ITEM_ID, TIME, USER_ID, InteractionData

log = logging.getLogger(__name__)


def read_sequence_file(path: Path, *, what: str) -> pl.DataFrame:
    """``user item1 item2 ...`` per line (any whitespace) -> one row per event (user_id, item_id, _line)."""
    path = require_file(path, what)
    text = path.read_text(encoding="utf-8")
    lines = pl.Series("text", text.splitlines()).to_frame().with_row_index(LINE, offset=1)
    lines = lines.filter(pl.col("text").str.strip_chars() != "")
    if lines.height == 0:
        raise DataValidationError(f"{path}: no data lines; expected {what}.")
    tokens = lines.with_columns(
        pl.col("text").str.strip_chars().str.replace_all(r"\s+", " ").str.split(" ").alias("_t")
    )
    short = tokens.filter(pl.col("_t").list.len() < 2)
    if short.height:
        row = short.row(0, named=True)
        raise DataValidationError(
            f"{path.name} line {row[LINE]}: expected a user ID followed by at least one item ID "
            f"separated by spaces, got {row['text'][:120]!r}."
        )
    events = tokens.select(
        LINE,
        pl.col("_t").list.first().alias(USER_ID),
        pl.col("_t").list.slice(1).alias(ITEM_ID),
    ).explode(ITEM_ID)
    return events


def _category_columns(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """``categories`` (list of category paths) -> ``category_path`` (first path) and ``category`` (leaf)."""
    if source not in frame.columns:
        return frame
    return (
        frame.with_columns(
            pl.col(source).list.first().alias("category_path"),
        )
        .with_columns(pl.col("category_path").list.last().alias("category"))
        .drop(source)
    )


def _open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from fh


def _first_existing(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).exists()), None)


def _read_official_reviews(path: Path) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            rows.append(
                {
                    LINE: lineno,
                    USER_ID: rec["reviewerID"],
                    ITEM_ID: rec["asin"],
                    TIME: int(rec["unixReviewTime"]),
                    "rating": float(rec.get("overall", "nan")),
                }
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataValidationError(
                f"{path.name} line {lineno}: expected a JSON review with reviewerID, asin and unixReviewTime ({exc!r})."
            ) from None
    if not rows:
        raise DataValidationError(f"{path}: no reviews.")
    return pl.DataFrame(
        rows,
        schema={
            LINE: pl.Int64,
            USER_ID: pl.String,
            ITEM_ID: pl.String,
            TIME: pl.Int64,
            "rating": pl.Float32,
        },
    )


def _read_official_meta(path: Path, wanted: set[str]) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            rec = ast.literal_eval(line)  # the 2014 metadata is Python-literal, not JSON
        except (ValueError, SyntaxError):
            raise DataValidationError(
                f"{path.name} line {lineno}: expected a Python dict literal of item metadata."
            ) from None
        if not isinstance(rec, dict) or "asin" not in rec:
            raise DataValidationError(
                f"{path.name} line {lineno}: expected a dict with an 'asin' key."
            )
        if rec["asin"] in wanted:
            rows.append(
                {
                    LINE: lineno,
                    ITEM_ID: rec["asin"],
                    "title": rec.get("title"),
                    "brand": rec.get("brand"),
                    "price": rec.get("price"),
                    "categories": rec.get("categories"),
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            LINE: pl.Int64,
            ITEM_ID: pl.String,
            "title": pl.String,
            "brand": pl.String,
            "price": pl.Float64,
            "categories": pl.List(pl.List(pl.String)),
        },
    )


def load_amazon_beauty(root: Path) -> InteractionData:
    reviews = _first_existing(root, ["reviews_Beauty_5.json.gz", "reviews_Beauty_5.json"])
    if reviews is not None:
        inter = _read_official_reviews(reviews)
        meta_path = _first_existing(root, ["meta_Beauty.json.gz", "meta_Beauty.json"])
        items = None
        if meta_path is not None:
            items = _category_columns(
                _read_official_meta(meta_path, set(inter[ITEM_ID].unique().to_list())), "categories"
            )
            items = items.join(inter.select(ITEM_ID).unique(), on=ITEM_ID, how="semi")
        return build_dataset(
            "amazon-beauty",
            inter,
            items=items,
            order="time",
            sources={
                "interactions": reviews.name,
                "items": meta_path.name if meta_path else "items",
            },
            meta={"source": str(root), "variant": "official-reviews"},
        )
    inter = read_sequence_file(
        root / "user_sequence_asin.txt", what="Amazon Beauty sequences: reviewerID ASIN ..."
    )
    meta_path = root / "items_meta.jsonl"
    items = None
    if meta_path.exists():
        records = read_jsonl(meta_path, what="item metadata (asin, title, categories)")
        missing = [r for r in records if "asin" not in r]
        if missing:
            raise DataValidationError(
                f"{meta_path.name} line {missing[0][LINE]}: missing key 'asin'."
            )
        items = pl.DataFrame(
            [
                {
                    LINE: r[LINE],
                    ITEM_ID: r["asin"],
                    "title": r.get("title"),
                    "categories": r.get("categories"),
                }
                for r in records
            ],
            schema={
                LINE: pl.Int64,
                ITEM_ID: pl.String,
                "title": pl.String,
                "categories": pl.List(pl.List(pl.String)),
            },
        )
        items = _category_columns(items, "categories")
    return build_dataset(
        "amazon-beauty",
        inter,
        items=items,
        order="sequence",
        sources={"interactions": "user_sequence_asin.txt", "items": "items_meta.jsonl"},
        meta={"source": str(root), "variant": "sequences"},
    )


def load_amazon_scientific(root: Path) -> InteractionData:
    inter_path, item_path = root / "Scientific.inter.json", root / "Scientific.item.json"
    seqs = read_json(inter_path, what="LC-Rec interactions {user: [item, ...]}")
    if not isinstance(seqs, dict) or not seqs:
        raise DataValidationError(
            f"{inter_path.name}: expected a non-empty JSON object {{user: [item, ...]}}."
        )
    users, items_col = [], []
    for user, seq in seqs.items():
        if not isinstance(seq, list) or not all(isinstance(i, int) for i in seq):
            raise DataValidationError(
                f"{inter_path.name}: user {user!r}: expected a list of integer item IDs, got {seq!r:.80}."
            )
        users.extend([int(user)] * len(seq))
        items_col.extend(seq)
    inter = pl.DataFrame(
        {USER_ID: users, ITEM_ID: items_col}, schema={USER_ID: pl.Int64, ITEM_ID: pl.Int64}
    )
    meta = read_json(
        item_path, what="LC-Rec item text {item: {title, description, brand, categories}}"
    )
    if not isinstance(meta, dict):
        raise DataValidationError(
            f"{item_path.name}: expected a JSON object {{item: {{title, ...}}}}."
        )
    try:
        rows = [
            {
                ITEM_ID: int(k),
                "title": v.get("title"),
                "description": v.get("description"),
                "brand": v.get("brand"),
                "categories": v.get("categories"),
            }
            for k, v in meta.items()
        ]
    except (ValueError, AttributeError) as exc:
        raise DataValidationError(
            f"{item_path.name}: expected integer item keys with object values ({exc})."
        ) from None
    items = pl.DataFrame(
        rows,
        schema={
            ITEM_ID: pl.Int64,
            "title": pl.String,
            "description": pl.String,
            "brand": pl.String,
            "categories": pl.String,
        },
    )
    items = (
        items.with_columns(
            pl.col("categories").str.split(",").alias("category_path"),
        )
        .with_columns(pl.col("category_path").list.last().alias("category"))
        .drop("categories")
    )
    return build_dataset(
        "amazon-scientific",
        inter,
        items=items,
        order="sequence",
        sources={"interactions": inter_path.name, "items": item_path.name},
        meta={"source": str(root)},
    )
