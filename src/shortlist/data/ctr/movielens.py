"""ML-1M CTR as RecBole defines it (RecBole benchmark/hyper/context, the anchor of ANCHORS.md section 3).

Definition, applied to the 1,000,209 ML-1M ratings:

- label: ratings 4 and 5 -> 1, ratings 1 and 2 -> 0, ratings of 3 are dropped (739,012 rows remain);
- split: one random permutation of the rows (``seed``), then 8:1:1 with RecBole's rounding
  (``valid = test = int(0.1 * n)``, train = the rest); no row-order or time information is used;
- fields (embedding per field, RecBole's token fields): ``user_id``, ``item_id``; user side
  ``gender``, ``age``, ``occupation``, ``zip`` (hashed into ``zip_buckets`` buckets: an unbounded
  vocabulary); item side ``genres`` (multi-valued, up to 6) and ``year`` (release year from the
  title, categorical).

There are no behaviour sequences in this definition (and the project's copy has no timestamps for
most ratings, see ``../shared/data/ml-1m/SOURCE.md``).

The 14 unresolved movies of the project's partial copy (21 ratings whose MovieID is ambiguous
between 2-3 adjacent candidates, ``movie_id=-1`` in the derived CSV) are kept: the loader gives each
one a distinct raw ID ``-r_item_index``, so each is its own ``item_id``; their ``genres`` and
``year`` are unknown and mapped to index 0 (missing). ``meta["unresolved_items"]`` counts them.
With the official ``ratings.dat`` there are none.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from shortlist.data.ctr.dataset import CTRData, CTRPart
from shortlist.data.ctr.features import FeatureSpec, Field, hash_bucket
from shortlist.data.errors import DataValidationError
from shortlist.data.schema import ITEM, ITEM_ID, USER, InteractionData

log = logging.getLogger(__name__)

MAX_GENRES = 6  # ML-1M movies have 1..6 genres


def recbole_split_sizes(n: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[int]:
    """RecBole's ``split_by_ratio`` counts: every part but the first gets ``int(ratio * n)``."""
    total = sum(ratios)
    cnt = [int(r / total * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    return cnt


def _vocab(values: list, *, what: str) -> tuple[dict, int]:
    """Sorted distinct non-null values -> 1..V (0 = missing); returns (mapping, V + 1)."""
    uniq = sorted({v for v in values if v is not None})
    return {v: i + 1 for i, v in enumerate(uniq)}, len(uniq) + 1


def ml1m_ctr(
    data: InteractionData, *, seed: int = 2020, zip_buckets: int = 4096, name: str = "ml-1m-ctr"
) -> CTRData:
    """Build ML-1M CTR (module docstring) from the ml-1m dataset (``load_dataset("ml-1m")``)."""
    inter = data.interactions
    if "rating" not in inter.columns:
        raise DataValidationError(
            f"{data.name}: ML-1M CTR needs the 'rating' column of the ratings file; got columns {inter.columns}."
        )
    ratings = inter["rating"].to_numpy()
    bad = ~np.isin(ratings, [1.0, 2.0, 3.0, 4.0, 5.0])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"{data.name}: rating must be an integer 1-5; got {float(ratings[row])!r} at interaction row {row} "
            f"(user {inter[USER][row]}, item {inter[ITEM][row]})."
        )
    for col in ("gender", "age", "occupation", "zip"):
        if col not in data.users.columns:
            raise DataValidationError(
                f"{data.name}: the users table lacks field {col!r} (users.dat: UserID::Gender::Age::Occupation::Zip-code)."
            )
    keep = ratings != 3.0
    users = inter[USER].to_numpy()[keep].astype(np.int64) + 1  # 1..U, 0 = padding
    items = inter[ITEM].to_numpy()[keep].astype(np.int64)  # 1..N
    label = (ratings[keep] >= 4.0).astype(np.float32)
    n = len(label)

    # user side tables, indexed by user_id (row 0 = padding)
    u = data.users.sort(USER)
    gender_map, n_gender = _vocab(u["gender"].to_list(), what="gender")
    age_map, n_age = _vocab(u["age"].to_list(), what="age")
    occ_map, n_occ = _vocab(u["occupation"].to_list(), what="occupation")
    pad = np.zeros(1, dtype=np.int64)
    lookups = {
        "gender": np.concatenate([pad, [gender_map[g] for g in u["gender"].to_list()]]),
        "age": np.concatenate([pad, [age_map[a] for a in u["age"].to_list()]]),
        "occupation": np.concatenate([pad, [occ_map[o] for o in u["occupation"].to_list()]]),
        "zip": np.concatenate([pad, hash_bucket(u["zip"].to_list(), zip_buckets, salt="zip:")]),
    }
    # item side tables, indexed by item_id
    it = data.items.sort(ITEM)
    genre_lists = it["genres"].to_list() if "genres" in it.columns else [None] * it.height
    genre_map, n_genre = _vocab([g for gs in genre_lists if gs for g in gs], what="genre")
    genres = np.zeros((it.height + 1, MAX_GENRES), dtype=np.int64)
    for row, gs in enumerate(genre_lists, start=1):
        if gs:
            if len(gs) > MAX_GENRES:
                raise DataValidationError(
                    f"{data.name}: item {it[ITEM_ID][row - 1]!r} has {len(gs)} genres; at most {MAX_GENRES} expected."
                )
            genres[row, : len(gs)] = [genre_map[g] for g in gs]
    years = it["year"].to_list() if "year" in it.columns else [None] * it.height
    year_map, n_year = _vocab(years, what="year")
    lookups["genres"] = genres
    lookups["year"] = np.concatenate([pad, [year_map.get(y, 0) for y in years]]).astype(np.int64)
    unresolved = int((it[ITEM_ID].cast(pl.Int64, strict=False) < 0).sum() or 0)

    spec = FeatureSpec(
        fields=[
            Field("user_id", "sparse", data.num_users + 1),
            Field("item_id", "sparse", data.num_items + 1),
            Field("gender", "sparse", n_gender, source="user_id", lookup="gender"),
            Field("age", "sparse", n_age, source="user_id", lookup="age"),
            Field("occupation", "sparse", n_occ, source="user_id", lookup="occupation"),
            Field("zip", "sparse", zip_buckets + 1, source="user_id", lookup="zip", hashed=True),
            Field(
                "genres", "multi", n_genre, max_len=MAX_GENRES, source="item_id", lookup="genres"
            ),
            Field("year", "sparse", n_year, source="item_id", lookup="year"),
        ],
        label="label",
        user_field="user_id",
        meta={"definition": "recbole-ml-1m-ctr"},
    )
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid, _ = recbole_split_sizes(n)
    cuts = {
        "train": order[:n_train],
        "valid": order[n_train : n_train + n_valid],
        "test": order[n_train + n_valid :],
    }
    parts = {
        p: CTRPart({"user_id": users[r], "item_id": items[r], "label": label[r]})
        for p, r in cuts.items()
    }
    meta = {
        "source": data.meta.get("source", ""),
        "variant": data.meta.get("variant", ""),
        "ratings": len(ratings),
        "dropped_rating_3": int((~keep).sum()),
        "unresolved_items": unresolved,
        "seed": seed,
    }
    log.info(
        "%s: %d rows (%d ratings of 3 dropped), split %s",
        name,
        n,
        meta["dropped_rating_3"],
        [len(c) for c in cuts.values()],
    )
    return CTRData(name, spec, parts, lookups=lookups, meta=meta)
