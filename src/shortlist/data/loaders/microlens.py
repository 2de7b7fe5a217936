"""MicroLens (Ni et al., 2023; a short-video platform dataset with raw videos).

Files: ``MicroLens-50k_titles.csv`` (``item,title``; titles are English translations of Chinese
captions with hashtags), ``videos/<item>.mp4``, and, when present, the interactions
``MicroLens-50k_pairs.csv`` (``user,item,timestamp``; timestamps in milliseconds) or
``MicroLens-50k_pairs.tsv`` (``user<TAB>item item ...`` in chronological order). Without
interactions the dataset is an items-only catalogue (every titled item, ``order="none"``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shortlist.data.build import build_dataset
from shortlist.data.loaders.amazon import read_sequence_file
from shortlist.data.readers import LINE, Col, cast_columns, read_table
from shortlist.data.schema import ITEM_ID, TIME, USER_ID, InteractionData


def load_microlens(root: Path) -> InteractionData:
    items = read_table(
        root / "MicroLens-50k_titles.csv",
        [Col(ITEM_ID, "int"), Col("title", nullable=True)],
        rename={"item": ITEM_ID},
        what="MicroLens titles: item,title",
    ).select(LINE, ITEM_ID, "title")
    video_dir = root / "videos"
    videos = sorted(video_dir.glob("*.mp4")) if video_dir.is_dir() else []
    video_map = pl.DataFrame(
        {
            ITEM_ID: [int(p.stem) for p in videos if p.stem.isdigit()],
            "video_path": [str(p) for p in videos if p.stem.isdigit()],
        },
        schema={ITEM_ID: pl.Int64, "video_path": pl.String},
    )
    items = items.join(video_map, on=ITEM_ID, how="left", maintain_order="left")
    pairs_csv, pairs_tsv = root / "MicroLens-50k_pairs.csv", root / "MicroLens-50k_pairs.tsv"
    if pairs_csv.exists():
        inter = read_table(
            pairs_csv,
            [Col(USER_ID, "int"), Col(ITEM_ID, "int"), Col(TIME, "int")],
            rename={"user": USER_ID, "item": ITEM_ID},
            what="MicroLens pairs: user,item,timestamp",
        )
        inter = inter.select(LINE, USER_ID, ITEM_ID, (pl.col(TIME) // 1000).alias(TIME))
        order, source = "time", pairs_csv.name
    elif pairs_tsv.exists():
        text_events = read_sequence_file(pairs_tsv, what="MicroLens pairs: user<TAB>item item ...")
        inter = cast_columns(
            text_events, [Col(USER_ID, "int"), Col(ITEM_ID, "int")], pairs_tsv.name
        )
        order, source = "sequence", pairs_tsv.name
    else:
        inter = pl.DataFrame(schema={USER_ID: pl.Int64, ITEM_ID: pl.Int64})
        order, source = "none", "(no interaction file)"
    return build_dataset(
        "microlens",
        inter,
        items=items,
        order=order,
        keep_unseen_items=True,
        sources={"interactions": source, "items": "MicroLens-50k_titles.csv"},
        meta={"source": str(root), "videos": len(videos)},
    )
