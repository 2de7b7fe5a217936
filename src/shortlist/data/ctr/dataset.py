"""A prepared CTR dataset in plain NumPy: rows per split, shared side tables, behaviour sequences.

Notation: n rows of a split, B rows of a batch, L sequence positions, E events of all sequences.

:class:`CTRData` holds

- ``spec``: the :class:`~shortlist.data.ctr.features.FeatureSpec`;
- ``parts``: ``{"train", "valid", "test"}`` -> :class:`CTRPart`, the per-row columns: every stored
  non-sequence field, the label (n,) float32, the user field, and for behaviour data ``seq_row`` (n,)
  (whose sequence) and ``seq_end`` (n,) (the history is ``sequence[:seq_end]``, so it never contains
  the row's target or anything after it);
- ``sequences``: field name -> :class:`~shortlist.data.sequences.Jagged` (one sequence per user);
- ``lookups``: side tables indexed by a source field's values (``cate``: (N+1,) item -> category).

Histories and derived fields are materialised per batch by :meth:`CTRData.features`, so a prepared
dataset is small (Amazon Beauty behaviour CTR: about 3 MB) and needs only NumPy: it is saved to one
``.npz`` (:meth:`save`) and trained on where neither Polars nor the raw files exist (a GPU box).

Example:
    >>> data = CTRData.load(".gpu/ml-1m-ctr.npz")
    >>> feats = data.features("valid", np.arange(4))     # {"user_id": (4,), "genres": (4, 6), ...}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shortlist.atomic import atomic_path
from shortlist.data.ctr.features import FeatureSpec
from shortlist.data.sequences import Jagged

PARTS: tuple[str, ...] = ("train", "valid", "test")
SEQ_ROW, SEQ_END = "seq_row", "seq_end"
FORMAT = "shortlist.ctr"
FORMAT_VERSION = 1


@dataclass
class CTRPart:
    """The rows of one split: ``columns`` name -> (n,) or (n, k) array, all of equal length n."""

    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"CTRPart columns differ in length: {lengths}.")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass
class CTRData:
    """A prepared CTR dataset (see the module docstring)."""

    name: str
    spec: FeatureSpec
    parts: dict[str, CTRPart]
    sequences: dict[str, Jagged] = field(default_factory=dict)
    lookups: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [p for p in PARTS if p not in self.parts]
        if missing:
            raise ValueError(f"{self.name}: CTRData needs parts {PARTS}; missing {missing}.")
        for f in self.spec.fields:
            if f.source is not None:
                if f.lookup not in self.lookups:
                    raise ValueError(
                        f"{self.name}: field {f.name!r} reads lookup {f.lookup!r}, absent from {sorted(self.lookups)}."
                    )
            elif f.kind == "sequence" and f.name not in self.sequences:
                raise ValueError(
                    f"{self.name}: sequence field {f.name!r} has no stored sequences ({sorted(self.sequences)})."
                )
        for part_name, part in self.parts.items():
            need = {self.spec.label, self.spec.user_field}
            need |= {f.name for f in self.spec.stored() if f.kind != "sequence"}
            if any(f.kind == "sequence" for f in self.spec.stored()):
                need |= {SEQ_ROW, SEQ_END}
            absent = sorted(need - set(part.columns))
            if absent:
                raise ValueError(f"{self.name}: part {part_name!r} lacks columns {absent}.")

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts.values())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {p: len(self.parts[p]) for p in PARTS}
        for p in PARTS:
            out[f"{p}_positive_ratio"] = float(self.parts[p].columns[self.spec.label].mean())
        return out

    # -- batches --------------------------------------------------------------------------------
    def features(self, part: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every field of ``spec`` for the given rows of ``part``, plus label and user.

        Returns:
            name -> array: sparse (B,) int64, multi (B, M) int64, dense (B, d) float32, sequence
            (B, L) int64 left-padded (the most recent event last); ``spec.label`` (B,) float32;
            ``spec.user_field`` (B,) int64.
        """
        cols = self.parts[part].columns
        rows = np.asarray(rows, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for f in self.spec.fields:
            if f.source is not None:
                continue
            if f.kind == "sequence":
                out[f.name] = _history(
                    self.sequences[f.name], cols[SEQ_ROW][rows], cols[SEQ_END][rows], f.max_len
                )
            else:
                out[f.name] = cols[f.name][rows]
        self.derive(out)
        out[self.spec.label] = cols[self.spec.label][rows].astype(np.float32)
        if self.spec.user_field not in out:
            out[self.spec.user_field] = cols[self.spec.user_field][rows]
        return out

    def derive(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fill in (in place) every field derived through a lookup from the stored ones.

        This is what a server does for a request: given ``user_id``, the candidates' ``item_id``
        (B,) and the user's ``hist_item`` (B, L), it adds ``cate_id``, ``hist_cate``, ``sid0``, ...
        """
        for f in self.spec.fields:
            if f.source is not None:
                features[f.name] = self.lookups[f.lookup][features[f.source]]  # type: ignore[index]
        return features

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One compressed ``.npz`` with a JSON header (spec, meta); written atomically."""
        arrays: dict[str, np.ndarray] = {}
        for p, part in self.parts.items():
            for k, v in part.columns.items():
                arrays[f"part/{p}/{k}"] = v
        for k, j in self.sequences.items():
            arrays[f"seq/{k}/values"] = j.values
            arrays[f"seq/{k}/offsets"] = j.offsets
        for k, v in self.lookups.items():
            arrays[f"lookup/{k}"] = v
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "spec": self.spec.to_dict(),
            "meta": self.meta,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CTRData:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no prepared CTR dataset here (make one with `python benchmarks/ctr.py prepare`)."
            )
        with np.load(path) as npz:
            if "header" not in npz.files:
                raise ValueError(f"{path}: not a CTR dataset written by CTRData.save (no header).")
            header = json.loads(bytes(npz["header"]).decode("utf-8"))
            if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
                raise ValueError(
                    f"{path}: expected format {FORMAT!r} version {FORMAT_VERSION}, got "
                    f"{header.get('format')!r} version {header.get('version')!r}."
                )
            parts: dict[str, dict[str, np.ndarray]] = {}
            seqs: dict[str, dict[str, np.ndarray]] = {}
            lookups: dict[str, np.ndarray] = {}
            for key in npz.files:
                kind, _, rest = key.partition("/")
                if kind == "part":
                    p, _, col = rest.partition("/")
                    parts.setdefault(p, {})[col] = npz[key]
                elif kind == "seq":
                    name, _, what = rest.rpartition("/")
                    seqs.setdefault(name, {})[what] = npz[key]
                elif kind == "lookup":
                    lookups[rest] = npz[key]
        return cls(
            name=header["name"],
            spec=FeatureSpec.from_dict(header["spec"]),
            parts={p: CTRPart(c) for p, c in parts.items()},
            sequences={k: Jagged(v["values"], v["offsets"]) for k, v in seqs.items()},
            lookups=lookups,
            meta=header.get("meta", {}),
        )


def _history(seq: Jagged, row: np.ndarray, end: np.ndarray, max_len: int) -> np.ndarray:
    """(B, max_len) left-padded windows ``seq[row][max(0, end - max_len):end]`` (0 = padding)."""
    start_abs = seq.offsets[row] + np.maximum(end - max_len, 0)  # (B,)
    end_abs = seq.offsets[row] + end
    pos = end_abs[:, None] - max_len + np.arange(max_len)[None, :]  # (B, L) absolute positions
    valid = pos >= start_abs[:, None]
    out = np.where(valid, seq.values[np.clip(pos, 0, max(len(seq.values) - 1, 0))], 0)
    return out.astype(np.int64)
