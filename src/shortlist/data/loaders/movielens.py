"""MovieLens loaders (GroupLens official formats).

- ml-100k: ``u.data`` (user, item, rating, timestamp; tab-separated), ``u.user`` (user|age|gender|
  occupation|zip), ``u.item`` (item|title|release date|video release date|IMDb URL|19 genre flags;
  latin-1), ``u.genre`` (name|index).
- ml-1m: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp), ``users.dat``
  (UserID::Gender::Age::Occupation::Zip-code), ``movies.dat`` (MovieID::Title::Genres; latin-1).
  Where the official ``ratings.dat`` is absent, the project's partial copy is read instead (see
  ``../shared/data/ml-1m/SOURCE.md``): all 1,000,209 ratings without timestamps
  (``ratings_no_timestamp_Rpkg/ratings_user_movie_rating_origids.csv``) with the timestamps of the
  329,999 rows known from ``partial_timestamped_splits_nking`` merged in. That copy has no full
  chronological order, so it is marked ``order="none"`` and time-based protocols refuse it.
- ml-latest-small: ``ratings.csv`` (userId,movieId,rating,timestamp), ``movies.csv``
  (movieId,title,genres), ``tags.csv`` (userId,movieId,tag,timestamp; aggregated per movie).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from shortlist.data.build import build_dataset
from shortlist.data.readers import LINE, Col, read_delimited, read_table
from shortlist.data.schema import ITEM_ID, TIME, USER_ID, InteractionData

log = logging.getLogger(__name__)

_YEAR = r"\((\d{4})\)\s*$"


def _title_year(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("title").str.extract(_YEAR, 1).cast(pl.Int32, strict=False).alias("year")
    )


def load_ml_100k(root: Path) -> InteractionData:
    inter = read_delimited(
        root / "u.data",
        [Col(USER_ID, "int"), Col(ITEM_ID, "int"), Col("rating", "float"), Col(TIME, "time")],
        separator="\t",
        what="ml-100k ratings: user, item, rating, timestamp",
    )
    users = read_delimited(
        root / "u.user",
        [Col(USER_ID, "int"), Col("age", "int"), Col("gender"), Col("occupation"), Col("zip")],
        separator="|",
        what="ml-100k users",
    )
    genre_path = root / "u.genre"
    genres = (
        read_delimited(
            genre_path, [Col("name"), Col("index", "int")], separator="|", what="ml-100k genres"
        )
        .sort("index")["name"]
        .to_list()
    )
    item_cols = [
        Col(ITEM_ID, "int"),
        Col("title"),
        Col("release_date", nullable=True),
        Col("video_release_date", nullable=True),
        Col("imdb_url", nullable=True),
    ]
    item_cols += [Col(f"g{i}", "int") for i in range(len(genres))]
    items = read_delimited(
        root / "u.item", item_cols, separator="|", encoding="latin-1", what="ml-100k items"
    )
    flags = [f"g{i}" for i in range(len(genres))]
    items = items.with_columns(
        pl.concat_list(
            [pl.when(pl.col(f) == 1).then(pl.lit(g)) for f, g in zip(flags, genres, strict=True)]
        )
        .list.drop_nulls()
        .alias("genres")
    ).select(LINE, ITEM_ID, "title", "release_date", "genres")
    items = _title_year(items)
    return build_dataset(
        "ml-100k",
        inter.with_columns(pl.col("rating").cast(pl.Float32)),
        items=items,
        users=users.with_columns(pl.col("age").cast(pl.Int32)),
        order="time",
        sources={"interactions": "u.data", "items": "u.item", "users": "u.user"},
        meta={"source": str(root)},
    )


def _ml1m_side_tables(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    users = read_delimited(
        root / "users.dat",
        [
            Col(USER_ID, "int"),
            Col("gender"),
            Col("age", "int"),
            Col("occupation", "int"),
            Col("zip"),
        ],
        separator="::",
        what="ml-1m users: UserID::Gender::Age::Occupation::Zip-code",
    )
    movies = read_delimited(
        root / "movies.dat",
        [Col(ITEM_ID, "int"), Col("title"), Col("genres")],
        separator="::",
        encoding="latin-1",
        what="ml-1m movies: MovieID::Title::Genres",
    )
    movies = _title_year(movies.with_columns(pl.col("genres").str.split("|")))
    users = users.with_columns(pl.col("age").cast(pl.Int32), pl.col("occupation").cast(pl.Int32))
    return users, movies


ML1M_PARTIAL_RATINGS = Path("ratings_no_timestamp_Rpkg") / "ratings_user_movie_rating_origids.csv"
ML1M_PARTIAL_TIMES = (
    Path("partial_timestamped_splits_nking") / "ratings_timestamped_subset_origids.csv"
)


def load_ml_1m(root: Path) -> InteractionData:
    users, movies = _ml1m_side_tables(root)
    sources = {"items": "movies.dat", "users": "users.dat"}
    if (root / "ratings.dat").exists():
        inter = read_delimited(
            root / "ratings.dat",
            [Col(USER_ID, "int"), Col(ITEM_ID, "int"), Col("rating", "float"), Col(TIME, "time")],
            separator="::",
            what="ml-1m ratings: UserID::MovieID::Rating::Timestamp",
        )
        order = "time"
        variant = "official"
        sources["interactions"] = "ratings.dat"
    else:
        inter, movies = _ml1m_partial(root, movies)
        order = "none"
        variant = "partial-no-timestamps"
        sources["interactions"] = str(ML1M_PARTIAL_RATINGS)
        log.warning(
            "ml-1m: ratings.dat not found in %s; reading the partial copy (all ratings, no full time order). "
            "Sequential protocols need the official ratings.dat.",
            root,
        )
    return build_dataset(
        "ml-1m",
        inter.with_columns(pl.col("rating").cast(pl.Float32)),
        items=movies,
        users=users,
        order=order,
        sources=sources,
        meta={"source": str(root), "variant": variant},
    )


def _ml1m_partial(root: Path, movies: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The partial copy: ratings keyed by original movie ID, 14 movies only known by their R index.

    Those 14 rarely-rated movies (21 ratings) map to 2-3 candidate MovieIDs; they keep a distinct
    raw ID ``-r_item_index`` and their candidates in the ``movie_id_candidates`` item column.
    """
    inter = read_table(
        root / ML1M_PARTIAL_RATINGS,
        [
            Col(USER_ID, "int"),
            Col(ITEM_ID, "int"),
            Col("rating", "float"),
            Col("r_item_index", "int"),
            Col("movie_id_candidates", nullable=True),
        ],
        rename={"user_id": USER_ID, "movie_id": ITEM_ID},
        what="ml-1m partial ratings",
    )
    unresolved = inter.filter(pl.col(ITEM_ID) < 0)
    inter = inter.with_columns(
        pl.when(pl.col(ITEM_ID) < 0)
        .then(-pl.col("r_item_index"))
        .otherwise(pl.col(ITEM_ID))
        .alias(ITEM_ID)
    )
    extra = (
        unresolved.group_by("r_item_index")
        .agg(pl.col("movie_id_candidates").first())
        .sort("r_item_index")
        .select((-pl.col("r_item_index")).alias(ITEM_ID), "movie_id_candidates")
    )
    movies = pl.concat([movies, extra], how="diagonal_relaxed")
    times_path = root / ML1M_PARTIAL_TIMES
    if times_path.exists():
        times = (
            read_table(
                times_path,
                [Col(USER_ID, "int"), Col(ITEM_ID, "int"), Col(TIME, "time")],
                rename={"user_id": USER_ID, "movie_id": ITEM_ID},
                what="ml-1m timestamped subset",
            )
            .select(USER_ID, ITEM_ID, TIME)
            .unique(subset=[USER_ID, ITEM_ID], keep="first")
        )
        inter = inter.join(times, on=[USER_ID, ITEM_ID], how="left", maintain_order="left")
    return inter.select(
        LINE, USER_ID, ITEM_ID, "rating", *([TIME] if TIME in inter.columns else [])
    ), movies


def load_ml_latest_small(root: Path) -> InteractionData:
    inter = read_table(
        root / "ratings.csv",
        [Col(USER_ID, "int"), Col(ITEM_ID, "int"), Col("rating", "float"), Col(TIME, "time")],
        rename={"userId": USER_ID, "movieId": ITEM_ID},
        what="ratings: userId,movieId,rating,timestamp",
    ).select(LINE, USER_ID, ITEM_ID, pl.col("rating").cast(pl.Float32), TIME)
    movies = read_table(
        root / "movies.csv",
        [Col(ITEM_ID, "int"), Col("title"), Col("genres")],
        rename={"movieId": ITEM_ID},
        what="movies: movieId,title,genres",
    ).select(LINE, ITEM_ID, "title", pl.col("genres").str.split("|"))
    movies = _title_year(movies)
    tags_path = root / "tags.csv"
    if tags_path.exists():
        tags = read_table(
            tags_path,
            [Col(ITEM_ID, "int"), Col("tag", nullable=True)],
            rename={"movieId": ITEM_ID},
            what="tags: userId,movieId,tag,timestamp",
        )
        per_movie = (
            tags.drop_nulls("tag")
            .group_by(ITEM_ID)
            .agg(pl.col("tag").unique(maintain_order=True).alias("tags"))
        )
        movies = movies.join(per_movie, on=ITEM_ID, how="left", maintain_order="left")
    return build_dataset(
        "ml-latest-small",
        inter,
        items=movies,
        order="time",
        sources={"interactions": "ratings.csv", "items": "movies.csv"},
        meta={"source": str(root)},
    )
