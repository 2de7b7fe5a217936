"""The feature specification of a CTR dataset: declared once, read by data pipelines, rankers and serving.

Notation: B rows, M values of a multi-valued field, L positions of a behaviour sequence, d values of
a dense field.

A :class:`FeatureSpec` is a list of :class:`Field` s plus the label and the user field (GAUC groups
rows by it). Each field has one ``kind``:

- ``sparse``: one categorical index per row, (B,) int64 in [0, vocab_size); 0 = missing / padding;
- ``multi``: a bag of categorical indices, (B, M) int64, 0 = padding (ML-1M genres);
- ``dense``: (B, d) float32 numbers;
- ``sequence``: a behaviour sequence, (B, L) int64 left-padded with 0 (most recent event last).

Fields are either stored per row (``source=None``) or derived at batch time from another field
through an item- or user-side ``lookup`` table: ``cate_id`` is ``lookups["cate"][item_id]``,
``hist_cate`` is ``lookups["cate"][hist_item]``, a semantic-ID level ``sid1`` is
``lookups["sid1"][item_id]``. So a dataset stores each side table once, and a server scoring
candidates needs only their item indices and the user's history.

``vocab`` names the embedding table of a field: fields with the same vocab share one table
(``hist_item`` shares ``item_id``'s, as DIN and CAN do). ``target`` links a behaviour sequence to
the candidate field it is compared with (``hist_item`` -> ``item_id``): DIN's attention query and
CAN's induction side.

Unbounded vocabularies (zip codes, raw string IDs) are hashed into ``vocab_size - 1`` buckets with
:func:`hash_bucket`, a stable hash (BLAKE2b of the UTF-8 text), so training, evaluation and serving
map a raw value to the same bucket on every machine and Python version.

Example:
    >>> spec = FeatureSpec(
    ...     fields=[Field("item_id", "sparse", 101), Field("cate_id", "sparse", 11, source="item_id", lookup="cate"),
    ...             Field("hist_item", "sequence", 101, max_len=50, vocab="item_id", target="item_id")],
    ...     user_field="user")
    >>> spec.field("hist_item").table
    'item_id'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

FieldKind = Literal["sparse", "multi", "dense", "sequence"]
KINDS: tuple[str, ...] = ("sparse", "multi", "dense", "sequence")


@dataclass(frozen=True)
class Field:
    """One input feature of a ranker.

    Attributes:
        name: the field's name (a key of every batch).
        kind: ``sparse``, ``multi``, ``dense`` or ``sequence`` (see the module docstring).
        vocab_size: categorical fields: indices are in [0, vocab_size), 0 = missing/padding.
            Dense fields: the number of values d.
        max_len: ``multi``: M values per row; ``sequence``: L most recent events.
        vocab: the embedding table's name; fields with the same vocab share one table (default:
            the field's own name).
        source: the field this one is derived from through ``lookup`` (None = stored per row).
        lookup: the name of the side table (a key of the dataset's ``lookups``) mapping the source
            field's indices to this field's values.
        target: for a ``sequence``: the candidate field it is matched with (DIN query, CAN induction).
        hashed: True when raw values were hashed into buckets with :func:`hash_bucket`.
    """

    name: str
    kind: FieldKind
    vocab_size: int
    max_len: int = 0
    vocab: str = ""
    source: str | None = None
    lookup: str | None = None
    target: str | None = None
    hashed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"Field {self.name!r}: kind must be one of {KINDS}. Got {self.kind!r} instead."
            )
        if not isinstance(self.vocab_size, int) or self.vocab_size < 1:
            raise ValueError(
                f"Field {self.name!r}: vocab_size must be an int >= 1. Got {self.vocab_size!r} instead."
            )
        if self.kind in ("multi", "sequence") and self.max_len < 1:
            raise ValueError(
                f"Field {self.name!r} ({self.kind}): max_len must be >= 1. Got {self.max_len!r} instead."
            )
        if (self.source is None) != (self.lookup is None):
            raise ValueError(
                f"Field {self.name!r}: give both 'source' and 'lookup' (a derived field) or neither."
            )

    @property
    def table(self) -> str:
        """The embedding table this field reads (its ``vocab`` or its own name)."""
        return self.vocab or self.name

    @property
    def categorical(self) -> bool:
        return self.kind != "dense"


@dataclass
class FeatureSpec:
    """The fields of a CTR dataset, the label and the user field (see the module docstring).

    Fields are resolved in order, so a derived field must come after its source.
    """

    fields: list[Field]
    label: str = "label"
    user_field: str = "user"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = [f if isinstance(f, Field) else Field(**f) for f in self.fields]
        seen: dict[str, Field] = {}
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"FeatureSpec: field {f.name!r} is declared twice.")
            if f.source is not None and f.source not in seen:
                raise ValueError(
                    f"FeatureSpec: field {f.name!r} is derived from {f.source!r}, which must be declared before it."
                )
            if f.target is not None and f.target not in seen:
                raise ValueError(
                    f"FeatureSpec: sequence {f.name!r} targets {f.target!r}, which must be declared before it."
                )
            seen[f.name] = f
        tables: dict[str, int] = {}
        for f in self.fields:
            if f.categorical and tables.setdefault(f.table, f.vocab_size) != f.vocab_size:
                raise ValueError(
                    f"FeatureSpec: fields sharing table {f.table!r} disagree on vocab_size "
                    f"({tables[f.table]} vs {f.vocab_size} for {f.name!r})."
                )

    # -- queries ------------------------------------------------------------------------------
    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"No field {name!r} in the feature spec; fields: {self.names()}.")

    def names(self, kind: str | None = None) -> list[str]:
        return [f.name for f in self.fields if kind is None or f.kind == kind]

    def of_kind(self, *kinds: str) -> list[Field]:
        return [f for f in self.fields if f.kind in kinds]

    def tables(self) -> dict[str, int]:
        """Embedding table name -> vocab size, for every categorical field."""
        out: dict[str, int] = {}
        for f in self.fields:
            if f.categorical:
                out.setdefault(f.table, f.vocab_size)
        return out

    def stored(self) -> list[Field]:
        """Fields stored per row (not derived through a lookup)."""
        return [f for f in self.fields if f.source is None]

    def without(self, names: Iterable[str]) -> FeatureSpec:
        """A copy without the given fields (and the fields derived from, targeting or sharing the
        table of a dropped one)."""
        drop = set(names)
        kept = []
        for f in self.fields:
            if f.name in drop or {f.source, f.target, f.vocab} & drop:
                drop.add(f.name)
                continue
            kept.append(f)
        return FeatureSpec(kept, self.label, self.user_field, dict(self.meta))

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": [asdict(f) for f in self.fields],
            "label": self.label,
            "user_field": self.user_field,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | FeatureSpec) -> FeatureSpec:
        if isinstance(raw, FeatureSpec):
            return raw
        if not isinstance(raw, dict) or "fields" not in raw:
            raise TypeError(
                f"A FeatureSpec is built from a dict with a 'fields' list. Got {type(raw).__name__} instead."
            )
        return cls(
            fields=[Field(**f) for f in raw["fields"]],
            label=raw.get("label", "label"),
            user_field=raw.get("user_field", "user"),
            meta=dict(raw.get("meta", {})),
        )


def hash_bucket(values: Sequence[Any] | np.ndarray, buckets: int, *, salt: str = "") -> np.ndarray:
    """Stable hash of raw values (any type, compared by ``str``) into 1..buckets; None -> 0.

    BLAKE2b of ``salt + str(value)`` taken modulo ``buckets``, computed once per distinct value.

    Returns:
        (n,) int64 bucket indices in [0, buckets]; 0 only for missing values.
    """
    if buckets < 1:
        raise ValueError(f"hash_bucket needs buckets >= 1. Got {buckets!r} instead.")
    arr = np.asarray(values, dtype=object)
    out = np.zeros(len(arr), dtype=np.int64)
    missing = np.array([v is None for v in arr], dtype=bool)
    if (~missing).any():
        uniq, inverse = np.unique(arr[~missing].astype(str), return_inverse=True)
        codes = np.array(
            [
                int.from_bytes(
                    hashlib.blake2b((salt + u).encode("utf-8"), digest_size=8).digest(), "little"
                )
                % buckets
                + 1
                for u in uniq
            ],
            dtype=np.int64,
        )
        out[~missing] = codes[inverse]
    return out
