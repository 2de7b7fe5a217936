"""Negative sampling for next-item training over items 1..N.

Notation:
    N   number of items: item indices are 1..N and 0 is padding
    K   negatives drawn per positive (or per row)
    M   positives given to :meth:`NegativeSampler.sample_excluding`
    R   rows given to :meth:`NegativeSampler.sample_excluding_rows`

:class:`NegativeSampler` draws uniform or popularity (``count ** alpha``) negatives, seeded, with
vectorized rejection of positives; :mod:`shortlist.data.batches` uses it per position, per row or
per batch.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from shortlist.data._checks import _check_choice, _check_int
from shortlist.data.sequences import Jagged

log = logging.getLogger(__name__)

SamplingMode = Literal["uniform", "popularity"]

SAMPLING_MODES: tuple[str, ...] = ("uniform", "popularity")

# Rejection rounds before the exact (slow, per-element) fallback; a collision survives r rounds
# with probability p**r, p being the sampling mass of the forbidden items.
_MAX_REJECTION_ROUNDS = 32
# Largest (rows x (N+1)) boolean membership table built for per-row rejection (16 MiB); larger
# batches x catalogues use a binary search in sorted keys instead.
_MAX_TABLE_CELLS = 1 << 24

__all__ = ["NegativeSampler"]


class NegativeSampler:
    """Seeded, vectorized negative sampling over items 1..N.

    Modes:
        ``"uniform"``: every item with probability 1/N.
        ``"popularity"``: item i with probability proportional to ``counts[i] ** alpha``
            (alpha < 1 flattens the popularity curve, as in word2vec; items with count 0 are
            never drawn).

    Rejection of positives is vectorized: draw everything, find collisions with one comparison
    (per position) or a sorted-key lookup (per row), redraw only those, and repeat; after
    32 rounds the few survivors are drawn exactly from the allowed items.

    Args:
        num_items: N.
        mode: ``"uniform"`` or ``"popularity"``.
        counts: (N+1,) interaction count per item index (entry 0, the padding item, is ignored),
            e.g. ``np.bincount(sequences.values, minlength=N + 1)``; required for popularity.
        alpha: popularity exponent.
        seed: seed (or generator) of the sampler's own generator, used when a call passes none.

    Example:
        >>> s = NegativeSampler(100, seed=0)
        >>> neg = s.sample_excluding(np.array([5, 7]), 3)  # (2, 3), never 5 in row 0 nor 7 in row 1
        >>> neg.shape, bool((neg[0] != 5).all() and (neg[1] != 7).all())
        ((2, 3), True)
    """

    def __init__(
        self,
        num_items: int,
        *,
        mode: SamplingMode = "uniform",
        counts: np.ndarray | None = None,
        alpha: float = 0.75,
        seed: int | np.random.Generator | None = 0,
    ) -> None:
        self.num_items = _check_int(num_items, "num_items", "NegativeSampler", low=1)
        _check_choice(mode, "mode", "NegativeSampler", SAMPLING_MODES)
        self.mode = mode
        self.alpha = float(alpha)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n = self.num_items
        if mode == "uniform":
            self._cdf: np.ndarray | None = None
            self.probabilities = np.full(n + 1, 1.0 / n)
            self.probabilities[0] = 0.0
            return
        if counts is None:
            raise ValueError("NegativeSampler(mode='popularity') needs counts of shape (N+1,).")
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (n + 1,):
            raise ValueError(
                f"The 'counts' parameter of NegativeSampler must have shape (num_items + 1,) = "
                f"({n + 1},), indexed by item (entry 0 ignored). Got {counts.shape} instead."
            )
        if not np.isfinite(counts).all() or counts[1:].min() < 0 or counts[1:].sum() <= 0:
            raise ValueError("NegativeSampler: counts must be finite, >= 0, and not all zero.")
        if not self.alpha >= 0:
            raise ValueError(f"The 'alpha' parameter of NegativeSampler must be >= 0. Got {alpha}.")
        weights = np.where(counts[1:] > 0, counts[1:] ** self.alpha, 0.0)  # (N,), 0**0 stays 0
        self._cdf = np.cumsum(weights)
        self.probabilities = np.concatenate([[0.0], weights / self._cdf[-1]])

    @classmethod
    def from_sequences(
        cls,
        sequences: Jagged,
        num_items: int,
        *,
        alpha: float = 0.75,
        seed: int | np.random.Generator | None = 0,
    ) -> NegativeSampler:
        """A popularity sampler whose counts are the item frequencies of ``sequences``."""
        counts = np.bincount(np.asarray(sequences.values, dtype=np.int64), minlength=num_items + 1)
        if len(counts) > num_items + 1:
            raise ValueError(
                f"NegativeSampler.from_sequences: item {len(counts) - 1} exceeds num_items={num_items}."
            )
        return cls(num_items, mode="popularity", counts=counts, alpha=alpha, seed=seed)

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}" if self.mode == "popularity" else ""
        return f"NegativeSampler(num_items={self.num_items}, mode={self.mode!r}{extra})"

    def sample(
        self, shape: int | tuple[int, ...], *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Independent draws of items in 1..N, int64 array of ``shape``."""
        rng = self.rng if rng is None else rng
        if self._cdf is None:
            return rng.integers(1, self.num_items + 1, size=shape, dtype=np.int64)
        u = rng.random(shape) * self._cdf[-1]
        idx = np.searchsorted(self._cdf, u, side="right")  # zero-weight items are never hit
        return np.minimum(idx, self.num_items - 1).astype(np.int64) + 1

    def sample_excluding(
        self, positives: np.ndarray, k: int, *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """(M, k) negatives for (M,) positives; ``out[m, j] != positives[m]`` for all j.

        Raises:
            ValueError: when a positive holds all the sampling mass (e.g. N == 1).
        """
        rng = self.rng if rng is None else rng
        positives = np.asarray(positives, dtype=np.int64).reshape(-1)
        out = self.sample((len(positives), k), rng=rng)  # (M, k)
        if out.size == 0:
            return out
        bad = np.flatnonzero(out == positives[:, None])  # flat indices into (M, k)
        owner = positives[bad // k]
        for _ in range(_MAX_REJECTION_ROUNDS):
            if bad.size == 0:
                return out
            redraw = self.sample(bad.size, rng=rng)
            out.flat[bad] = redraw
            still = redraw == owner
            bad, owner = bad[still], owner[still]
        self._exact_fallback(out, bad, [np.array([p]) for p in owner], rng)
        return out

    def sample_excluding_rows(
        self, forbidden: Jagged, k: int, *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """(R, k) negatives, none of row r's among ``forbidden[r]`` (e.g. the row's targets).

        Raises:
            ValueError: when a row's forbidden items hold all the sampling mass.
        """
        rng = self.rng if rng is None else rng
        n_rows = len(forbidden)
        out = self.sample((n_rows, k), rng=rng)  # (R, k)
        if out.size == 0 or len(forbidden.values) == 0:
            return out
        stride = self.num_items + 1
        row_of_value = np.repeat(np.arange(n_rows, dtype=np.int64), forbidden.lengths)
        keys = row_of_value * stride + forbidden.values.astype(np.int64)  # (E,) row * (N+1) + item
        if n_rows * stride <= _MAX_TABLE_CELLS:  # a (R, N+1) membership table: direct lookups
            table = np.zeros(n_rows * stride, dtype=bool)
            table[keys] = True

            def collides(flat: np.ndarray, cand: np.ndarray) -> np.ndarray:
                return table[(flat // k) * stride + cand]

        else:  # large catalogues: binary search in the sorted keys
            keys.sort()

            def collides(flat: np.ndarray, cand: np.ndarray) -> np.ndarray:
                q = (flat // k) * stride + cand
                pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
                return keys[pos] == q

        bad = np.flatnonzero(collides(np.arange(out.size), out.ravel()))
        for _ in range(_MAX_REJECTION_ROUNDS):
            if bad.size == 0:
                return out
            redraw = self.sample(bad.size, rng=rng)
            out.flat[bad] = redraw
            bad = bad[collides(bad, redraw)]
        self._exact_fallback(out, bad, [forbidden[r] for r in bad // k], rng)
        return out

    def _exact_fallback(
        self,
        out: np.ndarray,
        flat: np.ndarray,
        forbidden: list[np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        """Draw the few cells that kept colliding from the allowed items (cold path)."""
        if flat.size == 0:
            return
        log.debug("exact negative sampling for %d cells after rejection", flat.size)
        k = out.shape[1]
        for cell, items in zip(flat, forbidden, strict=True):
            p = self.probabilities.copy()
            p[np.asarray(items, dtype=np.int64)] = 0.0
            total = p.sum()
            if total <= 0:
                raise ValueError(
                    f"Cannot draw a negative for row {cell // k}: its {len(np.unique(items))} "
                    f"positives cover every item that {self!r} can draw. Use reject_positives=False "
                    "(and mask collisions in the loss) or a larger catalogue."
                )
            out.flat[cell] = rng.choice(len(p), p=p / total)
