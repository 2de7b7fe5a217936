"""Semantic IDs: the code table of a catalogue, collision handling, a prefix trie and metrics.

Notation: N items 1..N (row 0 of every item table is padding), L quantizer levels, L' = L + 1 code
positions when collisions are resolved by an extra level (L otherwise), K_l codes at position l.

A quantizer (``items/quantizers.py``) gives each item L codes; several items can share all L of
them (a collision). :meth:`SemanticIds.from_codes` resolves collisions as TIGER does: an extra
position numbers the items that share a code 0, 1, 2... (in item order), so every item gets a
unique L'-tuple. The table then answers

- ``codes_[item]``: the item's L' codes (row 0 is :data:`PAD`);
- ``item_of(code)`` / ``items_of(prefix)``: the item(s) under a full code or a prefix;
- ``allowed_next(prefix)``: the sorted valid next codes after a prefix, for constrained decoding
  (beam search that can only emit real items);
- ``tokens()``: codes as one flat vocabulary (0 = padding), for a generative model's embeddings;
- ``metrics()``: codebook utilisation, entropy, collision rate, items per code, reconstruction error.

The trie is stored as sorted arrays rather than nodes: for each depth p the distinct (p+1)-prefixes
of all codes in lexicographic order; a query narrows a row range one position at a time with
binary search, O(p log N) plus the size of the answer, and the answer is already sorted and unique.

Example:
    >>> rq = ResidualKMeans(3, 256).fit(X)
    >>> sids = SemanticIds.from_codes(rq.encode(X), codebook_size=256)
    >>> sids.codes_.shape                         # (N + 1, 4)
    >>> sids.allowed_next(sids.codes_[7][:2])     # third codes that follow item 7's first two
    >>> sids.item_of(tuple(sids.codes_[7]))       # 7
    >>> sids.save("runs/beauty/semantic_ids"); SemanticIds.load("runs/beauty/semantic_ids")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shortlist.atomic import atomic_path, write_json

PAD = -1  # the codes of item 0 (padding)
FORMAT = "shortlist.semantic_ids"
FORMAT_VERSION = 1
CODES_FILE = "codes.npz"
META_FILE = "semantic_ids.json"


@dataclass(frozen=True)
class SemanticIdMetrics:
    """Quality of a code table. Lists have one value per quantizer level (the extra level excluded).

    Attributes:
        utilisation: fraction of the K_l codes that at least one item uses, per level.
        entropy_bits: Shannon entropy of the code distribution per level, in bits (at most log2 K_l).
        collision_rate: fraction of items that share their full L-level code with another item
            (before the extra level).
        n_unique_codes: distinct L-level codes.
        max_items_per_code, mean_items_per_code: over the distinct L-level codes; the maximum is the
            size the extra level needs.
        reconstruction_error: mean over items of ||x - decode(codes)||^2, when a quantizer and X were
            given; ``relative_reconstruction_error`` divides by the mean ||x||^2.
    """

    n_items: int
    n_levels: int
    codebook_sizes: tuple[int, ...]
    utilisation: tuple[float, ...]
    entropy_bits: tuple[float, ...]
    collision_rate: float
    n_unique_codes: int
    max_items_per_code: int
    mean_items_per_code: float
    reconstruction_error: float | None = None
    relative_reconstruction_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _group_ranks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (N, L) codes: the lexicographic order of rows (stable: ties keep item order), each row's
    rank among the rows with the same code, and the size of each distinct code's group."""
    n = codes.shape[0]
    order = np.lexsort(codes.T[::-1])  # np.lexsort sorts by its last key first
    sorted_codes = codes[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (sorted_codes[1:] != sorted_codes[:-1]).any(1)
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[group]
    sizes = np.diff(np.append(starts, n))
    return order, rank, sizes


class SemanticIds:
    """A catalogue's semantic IDs: ``codes_`` (N + 1, L') int64 with row 0 = :data:`PAD`.

    Build with :meth:`from_codes` or :meth:`load`; the constructor only checks its arguments.

    Args:
        codes: (N + 1, L') codes, row 0 all :data:`PAD`, rows 1..N in [0, K_l).
        codebook_sizes: K_l for each of the L' positions.
        n_levels: L, the quantizer's levels (L' - 1 when ``dedup``, else L').
        dedup: whether the last position is the collision-resolving extra level.
    """

    def __init__(
        self, codes: np.ndarray, codebook_sizes: Sequence[int], n_levels: int, dedup: bool
    ) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        width = n_levels + int(dedup)
        if codes.ndim != 2 or codes.shape[1] != width or codes.shape[0] < 2:
            raise ValueError(
                f"SemanticIds expects codes of shape (N + 1, {width}) with N >= 1, got {codes.shape}."
            )
        if len(codebook_sizes) != width:
            raise ValueError(
                f"SemanticIds expects {width} codebook sizes, got {list(codebook_sizes)}."
            )
        if not (codes[0] == PAD).all():
            raise ValueError(f"Row 0 of the codes (item 0, padding) must be {PAD}, got {codes[0]}.")
        body = codes[1:]
        sizes = np.asarray(codebook_sizes, dtype=np.int64)
        bad = (body < 0) | (body >= sizes[None, :])
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"Code {body[row, col]} of item {row + 1} at position {col} is outside "
                f"[0, {sizes[col]})."
            )
        self.codes_ = codes
        self.codebook_sizes = tuple(int(k) for k in codebook_sizes)
        self.n_levels = int(n_levels)
        self.dedup = bool(dedup)
        self._build_index()

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_codes(
        cls,
        codes: np.ndarray,
        *,
        codebook_size: int | Sequence[int] | None = None,
        dedup: bool = True,
    ) -> SemanticIds:
        """The table of items 1..N from their (N, L) quantizer codes (row i = item i + 1).

        Args:
            codes: (N, L) non-negative integer codes.
            codebook_size: K (one for all levels) or K_l per level; default: max code + 1 per level
                (which understates K, and so overstates utilisation, when top codes are unused).
            dedup: append the extra level that numbers the items sharing a code 0, 1, 2...
                Without it, colliding items share one ID (``item_of`` then refuses those codes).
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
            raise ValueError(
                f"from_codes expects a non-empty (N, L) array, got shape {codes.shape}."
            )
        if not np.issubdtype(codes.dtype, np.integer):
            raise TypeError(f"from_codes expects integer codes, got dtype {codes.dtype}.")
        codes = codes.astype(np.int64)
        n, L = codes.shape
        if codes.min() < 0:
            raise ValueError(f"from_codes: codes must be >= 0, got {codes.min()}.")
        if codebook_size is None:
            sizes = [int(k) for k in codes.max(0) + 1]
        elif isinstance(codebook_size, int | np.integer):
            sizes = [int(codebook_size)] * L
        else:
            sizes = [int(k) for k in codebook_size]
            if len(sizes) != L:
                raise ValueError(f"from_codes: {L} levels but {len(sizes)} codebook sizes {sizes}.")
        if dedup:
            _, rank, group_sizes = _group_ranks(codes)
            codes = np.concatenate([codes, rank[:, None]], axis=1)
            sizes = [*sizes, int(group_sizes.max())]
        table = np.full((n + 1, codes.shape[1]), PAD, dtype=np.int64)
        table[1:] = codes
        return cls(table, sizes, n_levels=L, dedup=dedup)

    @classmethod
    def from_quantizer(cls, quantizer: Any, X: np.ndarray, *, dedup: bool = True) -> SemanticIds:
        """Encode X (rows = items 1..N) with a fitted quantizer and build the table."""
        return cls.from_codes(
            quantizer.encode(X), codebook_size=quantizer.codebook_size, dedup=dedup
        )

    def _build_index(self) -> None:
        body = self.codes_[1:]
        order = np.lexsort(body.T[::-1])
        self._sorted = body[order]  # (N, L') codes in lexicographic order
        self._sorted_items = order + 1  # item id of each sorted row
        # per depth p: the distinct (p+1)-prefixes, sorted (the trie's nodes at depth p+1)
        self._prefixes: list[np.ndarray] = []
        for p in range(self.width):
            cols = self._sorted[:, : p + 1]
            new = np.ones(len(cols), dtype=bool)
            new[1:] = (cols[1:] != cols[:-1]).any(1)
            self._prefixes.append(np.ascontiguousarray(cols[new]))

    # -- shape -----------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return self.codes_.shape[0] - 1

    @property
    def width(self) -> int:
        """L': code positions per item (with the extra level when ``dedup``)."""
        return self.codes_.shape[1]

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        return (
            f"SemanticIds(n_items={self.n_items}, n_levels={self.n_levels}, dedup={self.dedup}, "
            f"codebook_sizes={self.codebook_sizes})"
        )

    # -- lookups ---------------------------------------------------------------------------------
    def _prefix(self, prefix: Sequence[int] | np.ndarray) -> tuple[int, ...]:
        values = np.asarray(prefix)
        if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
            raise TypeError(f"A code prefix must be a 1-d sequence of ints, got {prefix!r}.")
        return tuple(int(v) for v in values)

    @staticmethod
    def _narrow(table: np.ndarray, prefix: tuple[int, ...]) -> tuple[int, int]:
        """Rows [lo, hi) of a lexicographically sorted table that start with ``prefix``."""
        lo, hi = 0, table.shape[0]
        for j, v in enumerate(prefix):
            col = table[lo:hi, j]
            lo, hi = (
                lo + int(np.searchsorted(col, v, "left")),
                lo + int(np.searchsorted(col, v, "right")),
            )
            if lo == hi:
                break
        return lo, hi

    def allowed_next(self, prefix: Sequence[int] | np.ndarray = ()) -> np.ndarray:
        """Sorted distinct codes that can follow ``prefix`` (empty when the prefix is not the start
        of any item's code, or is already a full code)."""
        prefix = self._prefix(prefix)
        depth = len(prefix)
        if depth >= self.width:
            return np.empty(0, dtype=np.int64)
        table = self._prefixes[depth]
        lo, hi = self._narrow(table, prefix)
        return table[lo:hi, depth].copy()

    def items_of(self, prefix: Sequence[int] | np.ndarray) -> np.ndarray:
        """Sorted ids of the items whose code starts with ``prefix`` (a full code: its item(s))."""
        prefix = self._prefix(prefix)
        if len(prefix) > self.width:
            return np.empty(0, dtype=np.int64)
        lo, hi = self._narrow(self._sorted, prefix)
        return np.sort(self._sorted_items[lo:hi])

    def item_of(self, code: Sequence[int] | np.ndarray) -> int:
        """The item with this full L'-position code.

        Raises:
            KeyError: no item has the code.
            ValueError: the code has the wrong length, or (only without ``dedup``) several items
                share it.
        """
        code = self._prefix(code)
        if len(code) != self.width:
            raise ValueError(f"A full code has {self.width} positions, got {len(code)}: {code}.")
        items = self.items_of(code)
        if items.size == 0:
            raise KeyError(f"No item has the code {code}.")
        if items.size > 1:
            raise ValueError(
                f"The code {code} is shared by items {items.tolist()[:10]}; use items_of, or build "
                "the table with dedup=True."
            )
        return int(items[0])

    def is_valid(self, code: Sequence[int] | np.ndarray) -> bool:
        """Whether ``code`` is the full code of some item."""
        code = self._prefix(code)
        return len(code) == self.width and self.items_of(code).size > 0

    # -- as model inputs -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """1 (padding) + sum of the codebook sizes: the size of :meth:`tokens`' vocabulary."""
        return 1 + sum(self.codebook_sizes)

    def tokens(self) -> np.ndarray:
        """(N + 1, L') codes as one flat vocabulary: position l, code c -> 1 + sum_{j<l} K_j + c;
        item 0 -> 0."""
        offsets = 1 + np.concatenate([[0], np.cumsum(self.codebook_sizes)[:-1]])
        out = self.codes_ + offsets[None, :]
        out[0] = 0
        return out

    # -- quality ---------------------------------------------------------------------------------
    def metrics(self, quantizer: Any = None, X: np.ndarray | None = None) -> SemanticIdMetrics:
        """Utilisation, entropy and collisions of the L quantizer levels, and with ``quantizer``
        and ``X`` (rows = items 1..N) the reconstruction error of ``quantizer.decode``."""
        if (quantizer is None) != (X is None):
            raise ValueError(
                "metrics: give both quantizer and X for the reconstruction error, or neither."
            )
        L = self.n_levels
        codes = self.codes_[1:, :L]  # (N, L) before the extra level
        n = codes.shape[0]
        utilisation, entropy = [], []
        for level in range(L):
            counts = np.bincount(codes[:, level], minlength=self.codebook_sizes[level])
            utilisation.append(float((counts > 0).mean()))
            p = counts[counts > 0] / n
            entropy.append(float(-(p * np.log2(p)).sum()) + 0.0)
        _, _, group_sizes = _group_ranks(codes)
        recon = rel = None
        if quantizer is not None:
            X = np.asarray(X, dtype=np.float32)
            if X.shape[0] != n:
                raise ValueError(f"metrics: X has {X.shape[0]} rows but the table has {n} items.")
            err = ((X - quantizer.decode(codes)) ** 2).sum(1)
            recon = float(err.mean())
            rel = float(err.sum() / max(float((X.astype(np.float64) ** 2).sum()), 1e-30))
        return SemanticIdMetrics(
            n_items=n,
            n_levels=L,
            codebook_sizes=self.codebook_sizes[:L],
            utilisation=tuple(utilisation),
            entropy_bits=tuple(entropy),
            collision_rate=float(group_sizes[group_sizes > 1].sum() / n),
            n_unique_codes=int(group_sizes.size),
            max_items_per_code=int(group_sizes.max()),
            mean_items_per_code=float(n / group_sizes.size),
            reconstruction_error=recon,
            relative_reconstruction_error=rel,
        )

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/codes.npz`` and ``path/semantic_ids.json`` (each atomically; the JSON, written
        last, holds the SHA-256 of the codes file, so a torn pair is detected by :meth:`load`)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / CODES_FILE, suffix=".npz") as tmp:
            np.savez_compressed(tmp, codes=self.codes_)
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_items": self.n_items,
            "n_levels": self.n_levels,
            "dedup": self.dedup,
            "codebook_sizes": list(self.codebook_sizes),
            "pad": PAD,
            "codes_sha256": digest,
        }
        write_json(folder / META_FILE, meta)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> SemanticIds:
        """Read a folder written by :meth:`save`."""
        folder = Path(path)
        meta_path, codes_path = folder / META_FILE, folder / CODES_FILE
        for p in (meta_path, codes_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: not a folder written by SemanticIds.save.")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: expected format {FORMAT!r} version {FORMAT_VERSION}, got "
                f"{meta.get('format')!r} version {meta.get('version')!r}."
            )
        raw = codes_path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != meta["codes_sha256"]:
            raise ValueError(f"{codes_path} does not match the checksum in {meta_path}.")
        with np.load(codes_path) as npz:
            codes = npz["codes"]
        if codes.shape[0] != meta["n_items"] + 1:
            raise ValueError(
                f"{codes_path}: {codes.shape[0] - 1} items, {meta_path} says {meta['n_items']}."
            )
        return cls(codes, meta["codebook_sizes"], n_levels=meta["n_levels"], dedup=meta["dedup"])
