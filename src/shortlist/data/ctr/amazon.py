"""Amazon Beauty behaviour CTR as DIN and CAN define it (DIN's ``build_dataset.py`` construction).

Definition, applied to each user's chronological sequence s_0 .. s_{n-1} (Amazon 2014 Beauty
5-core, so n >= 5):

- every step t = 1 .. n-1 gives two rows with the same history s_0 .. s_{t-1} (the most recent
  ``max_len``; item IDs and their categories): the true next item s_t with label 1, and one sampled
  item with label 0, drawn uniformly from the catalogue among the items the user never reviewed
  (DIN re-draws while the sample is in the user's list), once, with ``seed``;
- split by time within each user, as DIN does (DIN puts each user's last step in the test set and
  every earlier step in training): the last step (t = n-1) is test, the step before (t = n-2) is
  validation (for early stopping; DIN has no validation set), all earlier steps are training;
- fields: ``user_id``; candidate ``item_id`` and its ``cate_id`` (the leaf of the item's first
  category path in the metadata; items without metadata get their own "unknown" category);
  behaviour sequences ``hist_item`` and ``hist_cate`` (left-padded, most recent last);
  optional semantic-ID levels (``sid0``, ``sid1``, ... of the candidate item, from a
  :class:`~shortlist.items.semantic_ids.SemanticIds` table) with the history's first level
  ``hist_sid0``: extra sparse fields a ranker may use or leave out.
"""

from __future__ import annotations

import logging

import numpy as np

from shortlist.data.ctr.dataset import SEQ_END, SEQ_ROW, CTRData, CTRPart
from shortlist.data.ctr.features import FeatureSpec, Field
from shortlist.data.errors import DataValidationError
from shortlist.data.schema import ITEM, InteractionData

log = logging.getLogger(__name__)

UNKNOWN_CATEGORY = "<unknown>"


def sample_negatives(
    users: np.ndarray, seqs_values: np.ndarray, seqs_offsets: np.ndarray, num_items: int, seed: int
) -> np.ndarray:
    """One item per row, uniform over 1..num_items, never an item of that row's user's sequence.

    Args:
        users: (R,) user (row of the jagged sequences) of each row.
    Returns:
        (R,) int64 sampled items.
    """
    rng = np.random.default_rng(seed)
    user_of_event = np.repeat(np.arange(len(seqs_offsets) - 1), np.diff(seqs_offsets))
    seen = np.unique(user_of_event.astype(np.int64) * (num_items + 1) + seqs_values)  # sorted keys
    out = rng.integers(1, num_items + 1, len(users))
    for _ in range(1000):
        keys = users.astype(np.int64) * (num_items + 1) + out
        pos = np.searchsorted(seen, keys)
        bad = (pos < len(seen)) & (seen[np.minimum(pos, len(seen) - 1)] == keys)
        if not bad.any():
            return out.astype(np.int64)
        out[bad] = rng.integers(1, num_items + 1, int(bad.sum()))
    raise ValueError(
        "sample_negatives: could not draw unseen items (does a user review every item?)."
    )


def beauty_ctr(
    data: InteractionData,
    *,
    max_len: int = 50,
    seed: int = 0,
    semantic_ids: np.ndarray | None = None,
    name: str = "amazon-beauty-ctr",
) -> CTRData:
    """Build the behaviour CTR dataset (module docstring) from a sequence dataset.

    Args:
        data: ``load_dataset("amazon-beauty")`` (any dataset whose per-user order is chronological).
        max_len: history length L (the most recent L events).
        semantic_ids: optional (N+1, levels) int64 codes per item (row 0 = padding, ignored),
            e.g. ``SemanticIds.codes_[:, :n_levels]``.
    """
    if data.order == "none":
        raise DataValidationError(
            f"{data.name}: behaviour CTR needs chronological sequences; this dataset has no per-user order."
        )
    seqs = data.sequences()
    lengths = seqs.lengths
    short = np.flatnonzero(lengths < 3)
    if len(short):
        raise DataValidationError(
            f"{data.name}: user {data.user_ids(short[:1])[0]!r} has {int(lengths[short[0]])} events; "
            "behaviour CTR needs >= 3 per user (train, valid and test steps); filter to a k-core first."
        )
    N = data.num_items
    items = data.items.sort(ITEM)
    cats = items["category"].to_list() if "category" in items.columns else [None] * N
    cats = [c if c is not None else UNKNOWN_CATEGORY for c in cats]
    cat_names = sorted(set(cats))
    cat_index = {c: i + 1 for i, c in enumerate(cat_names)}
    cate = np.concatenate([[0], [cat_index[c] for c in cats]]).astype(np.int64)  # (N+1,)

    # one row per step: user u, step t in 1..n-1 (target s_t, history s_:t)
    U = len(lengths)
    steps_per_user = lengths - 1
    user = np.repeat(np.arange(U), steps_per_user)
    first = np.repeat(np.cumsum(steps_per_user) - steps_per_user, steps_per_user)
    t = np.arange(len(user)) - first + 1
    target = seqs.values[seqs.offsets[user] + t].astype(np.int64)
    negative = sample_negatives(user, seqs.values, seqs.offsets, N, seed)
    last = lengths[user] - 1
    part_of = np.where(t == last, 2, np.where(t == last - 1, 1, 0))  # 0 train, 1 valid, 2 test

    lookups: dict[str, np.ndarray] = {"cate": cate}
    fields = [
        Field("user_id", "sparse", U + 1),
        Field("item_id", "sparse", N + 1),
        Field("cate_id", "sparse", len(cat_names) + 1, source="item_id", lookup="cate"),
        Field("hist_item", "sequence", N + 1, max_len=max_len, vocab="item_id", target="item_id"),
        Field(
            "hist_cate", "sequence", len(cat_names) + 1, max_len=max_len, vocab="cate_id",
            source="hist_item", lookup="cate", target="cate_id",
        ),
    ]  # fmt: skip
    if semantic_ids is not None:
        codes = np.asarray(semantic_ids, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] != N + 1:
            raise DataValidationError(
                f"{data.name}: semantic IDs must be (N+1, levels) = ({N + 1}, L) codes; got {codes.shape}."
            )
        for level in range(codes.shape[1]):
            col = np.where(
                np.arange(N + 1) == 0, 0, codes[:, level] + 1
            )  # codes 0.. -> 1.., 0 = pad
            lookups[f"sid{level}"] = col
            size = int(col.max()) + 1
            fields.append(
                Field(f"sid{level}", "sparse", size, source="item_id", lookup=f"sid{level}")
            )
        fields.append(
            Field(
                "hist_sid0", "sequence", int(lookups["sid0"].max()) + 1, max_len=max_len,
                vocab="sid0", source="hist_item", lookup="sid0", target="sid0",
            )
        )  # fmt: skip
    spec = FeatureSpec(
        fields, label="label", user_field="user_id", meta={"definition": "din-amazon"}
    )

    parts = {}
    for p, code in (("train", 0), ("valid", 1), ("test", 2)):
        rows = np.flatnonzero(part_of == code)
        k = len(rows)
        parts[p] = CTRPart(
            {
                "user_id": np.tile(user[rows] + 1, 2).astype(np.int64),
                "item_id": np.concatenate([target[rows], negative[rows]]),
                "label": np.concatenate([np.ones(k, np.float32), np.zeros(k, np.float32)]),
                SEQ_ROW: np.tile(user[rows], 2).astype(np.int64),
                SEQ_END: np.tile(t[rows], 2).astype(np.int64),
            }
        )
    sequences = {"hist_item": seqs.__class__(seqs.values.astype(np.int64), seqs.offsets)}
    meta = {
        "source": data.meta.get("source", ""),
        "users": int(U),
        "items": int(N),
        "categories": len(cat_names),
        "items_without_category": int(sum(c == UNKNOWN_CATEGORY for c in cats)),
        "max_len": max_len,
        "seed": seed,
        "semantic_id_levels": 0 if semantic_ids is None else int(np.asarray(semantic_ids).shape[1]),
    }
    log.info("%s: %s", name, {p: len(v) for p, v in parts.items()})
    return CTRData(name, spec, parts, sequences=sequences, lookups=lookups, meta=meta)
