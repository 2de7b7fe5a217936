"""The canonical in-memory dataset every loader returns and every later stage consumes.

Notation: U users, N items, E interactions.

- ``interactions``: one row per event, columns
    ``user``      Int32, 0..U-1 (dense, in order of first appearance in the source log)
    ``item``      Int32, 1..N (dense, in order of first appearance; 0 is reserved for padding)
    ``timestamp`` Int64 seconds since the epoch, nullable (absent when the source has no time)
    ``rating``/``label``/... optional Float32 columns, and any extra feature columns
  sorted by user, then by time (``order == "time"``) or by original position in the source
  (``order == "sequence"``: the source lists each user's events in chronological order without
  timestamps, as Amazon 5-core sequence files do; ``order == "none"``: there is no meaningful
  per-user order, and time-based protocols refuse the dataset).
- ``items``: N rows, ``item`` (1..N) + ``item_id`` (the raw ID) + side columns (title, categories...).
- ``users``: U rows, ``user`` (0..U-1) + ``user_id`` (the raw ID) + side columns.

Per-user sequences are exposed jagged: ``values`` (E,) and ``offsets`` (U+1,), so user ``u``'s items
are ``values[offsets[u]:offsets[u+1]]`` (the layout of generative-recommenders' jagged tensors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from shortlist.data.sequences import Jagged

Order = Literal["time", "sequence", "none"]
ORDERS: tuple[str, ...] = ("time", "sequence", "none")

USER, ITEM, TIME = "user", "item", "timestamp"
USER_ID, ITEM_ID = "user_id", "item_id"


@dataclass(frozen=True)
class DatasetStats:
    """Summary figures of a dataset (``shortlist data stats``)."""

    name: str
    users: int
    items: int
    interactions: int
    sparsity: float
    order: str
    has_timestamps: bool
    length_min: int
    length_median: float
    length_mean: float
    length_p90: float
    length_max: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class InteractionData:
    """A prepared, integer-indexed dataset (see the module docstring for the schema).

    Build one with :func:`shortlist.data.build.build_dataset`, which validates and re-indexes raw
    frames; the constructor only checks the invariants.
    """

    name: str
    interactions: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame
    order: Order
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        for col in (USER, ITEM):
            if col not in self.interactions.columns:
                raise ValueError(f"{self.name}: interactions lack the {col!r} column")
        assert self.items.height == 0 or self.items[ITEM].to_numpy()[0] == 1, "items start at 1"
        assert self.users.height == 0 or self.users[USER].to_numpy()[0] == 0, "users start at 0"

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return self.users.height

    @property
    def num_items(self) -> int:
        """N: items are 1..N, so embedding tables need N + 1 rows (row 0 = padding)."""
        return self.items.height

    @property
    def num_interactions(self) -> int:
        return self.interactions.height

    @property
    def has_timestamps(self) -> bool:
        return TIME in self.interactions.columns and self.interactions[TIME].null_count() == 0

    # -- sequences ---------------------------------------------------------------------------
    def offsets(self) -> np.ndarray:
        """(U+1,) int64 offsets of each user's rows in ``interactions`` (which is sorted by user)."""
        counts = np.bincount(self.interactions[USER].to_numpy(), minlength=self.num_users)
        offsets = np.zeros(self.num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets

    def sequences(self, column: str = ITEM) -> Jagged:
        """Every user's events in order, jagged: values (E,), offsets (U+1,)."""
        return Jagged(self.interactions[column].to_numpy(), self.offsets())

    def sequence_lengths(self) -> np.ndarray:
        """(U,) number of events per user."""
        return np.bincount(self.interactions[USER].to_numpy(), minlength=self.num_users)

    # -- vocabularies -------------------------------------------------------------------------
    def item_ids(self, items: np.ndarray) -> np.ndarray:
        """Map item indices (1..N) back to raw IDs."""
        raw = self.items[ITEM_ID].to_numpy()
        return raw[np.asarray(items) - 1]

    def user_ids(self, users: np.ndarray) -> np.ndarray:
        raw = self.users[USER_ID].to_numpy()
        return raw[np.asarray(users)]

    def item_index(self, raw_ids: list[Any] | np.ndarray) -> np.ndarray:
        """Map raw item IDs to indices 1..N; an unknown ID raises ValueError naming it."""
        frame = pl.DataFrame({ITEM_ID: pl.Series(list(raw_ids), dtype=self.items[ITEM_ID].dtype)})
        joined = frame.join(
            self.items.select(ITEM_ID, ITEM), on=ITEM_ID, how="left", maintain_order="left"
        )
        missing = joined.filter(pl.col(ITEM).is_null())
        if missing.height:
            raise ValueError(
                f"{self.name}: unknown item ID {missing[ITEM_ID][0]!r} "
                f"({missing.height} unknown of {frame.height})"
            )
        return joined[ITEM].to_numpy()

    # -- summary ------------------------------------------------------------------------------
    def stats(self) -> DatasetStats:
        lengths = self.sequence_lengths()
        lengths = lengths[lengths > 0] if lengths.size else np.zeros(1, dtype=np.int64)
        if lengths.size == 0:
            lengths = np.zeros(1, dtype=np.int64)
        cells = max(self.num_users, 1) * max(self.num_items, 1)
        return DatasetStats(
            name=self.name,
            users=self.num_users,
            items=self.num_items,
            interactions=self.num_interactions,
            sparsity=1.0 - self.num_interactions / cells if self.num_users else 1.0,
            order=self.order,
            has_timestamps=self.has_timestamps,
            length_min=int(lengths.min()),
            length_median=float(np.median(lengths)),
            length_mean=float(lengths.mean()),
            length_p90=float(np.percentile(lengths, 90)),
            length_max=int(lengths.max()),
        )

    def __repr__(self) -> str:
        return (
            f"InteractionData(name={self.name!r}, users={self.num_users:,}, items={self.num_items:,}, "
            f"interactions={self.num_interactions:,}, order={self.order!r})"
        )
