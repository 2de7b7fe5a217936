"""Behaviour item embeddings from training sequences, and their fusion with content embeddings.

Why: semantic IDs built from content alone give near-duplicate products (the same title in another
shade or size) nearly the same vector, so they fall into the same code prefix and collide. QARM
(Luo et al., arXiv 2411.11739; reference/PAPERS.md section 3) argues that item codes should be
*behaviour-aligned*: items that users treat alike should be close, and, conversely, items with
the same text but different buyers should not be merged. This module gives every item a
behaviour vector from the training interaction log and fuses it with the content vector before
quantization (:func:`fuse_with_behaviour`), so the quantizer sees both.

The behaviour vector is the classic count-based counterpart of item2vec: a truncated SVD of the
positive PMI matrix of item-item co-occurrence inside a window of the training sequences
(Levy & Goldberg 2014 show that skip-gram with negative sampling implicitly factorises shifted
PMI; Levy, Goldberg & Dagan 2015 give the context-distribution smoothing ``alpha = 0.75`` and the
symmetric weighting ``U sqrt(S)`` used here). It needs no training loop and is deterministic for
a seed.

Notation: N items (1..N, row 0 = padding), B training sequences, E events, w the window, D the
behaviour size, C the (N+1, N+1) co-occurrence counts, r_i = sum_j C_ij, c_j = sum_i C_ij::

    C_ij     = #{(s, p, q): seq s has item i at p and item j at q, 0 < |p - q| <= w, i != j}
    P_a(j)   = c_j**alpha / sum_k c_k**alpha                         # smoothed context marginal
    PPMI_ij  = max(0, log(C_ij / (r_i * P_a(j))))
    PPMI     ~ U S V^T  (rank D, randomized SVD);  e_i = (U sqrt(S))_i / ||(U sqrt(S))_i||

Only pass *training* sequences (e.g. ``tiger_split(data).train``), so that no validation or test
event shapes the codes. Items without any training co-occurrence get no behaviour vector
(``has_behaviour_`` is False, their row is zero) and are fused from their content alone.

Example:
    >>> split = tiger_split(data)                                                  # doctest: +SKIP
    >>> behaviour = CooccurrenceSVD(BehaviourConfig(dim=32)).fit(split.train, data.num_items)
    >>> fused = fuse_with_behaviour(content, behaviour.embeddings_, weight=2.5)   # (N+1, Dc + 32)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from shortlist.data._checks import _bad, _is_int, _is_real
from shortlist.data.sequences import Jagged
from shortlist.items.fusion import fuse, real_matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BehaviourConfig:
    """Parameters of :class:`CooccurrenceSVD` and of its fusion with content embeddings.

    The defaults were chosen on Amazon Beauty and Scientific (benchmarks/semantic_ids.py): a short
    window (adjacent events) and a small D separate near-duplicate texts best; see
    benchmarks/results/semantic_ids.json for the collision rates they reach.
    """

    dim: int = 32  # D, behaviour embedding size (SVD rank)
    window: int = 1  # w: events at most w positions apart co-occur (1 = consecutive events)
    alpha: float = 0.75  # context-distribution smoothing of PMI (Levy et al. 2015); 1 = plain PMI
    weight: float = 2.5  # fusion weight of the behaviour block, the content block weighs 1
    n_iter: int = 5  # randomized SVD power iterations
    seed: int = 0  # seed of the randomized SVD

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, low in (("dim", 1), ("window", 1), ("n_iter", 1), ("seed", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise _bad(name, owner, f"an int >= {low}", value)
        if not _is_real(self.alpha) or not 0 < self.alpha <= 1:
            raise _bad("alpha", owner, "a float in (0, 1]", self.alpha)
        if not _is_real(self.weight) or self.weight < 0:
            raise _bad("weight", owner, "a finite float >= 0", self.weight)


def _check_sequences(sequences: object, num_items: int, owner: str) -> np.ndarray:
    """The sequences' values as int64 in [1, num_items], or an error naming the problem."""
    if not isinstance(sequences, Jagged):
        raise TypeError(
            f"{owner} needs training sequences as a shortlist.data.sequences.Jagged "
            f"(e.g. tiger_split(data).train); got {type(sequences).__name__}."
        )
    values = np.asarray(sequences.values)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise TypeError(
            f"{owner}: sequence values must be item ids (ints); got dtype {values.dtype}."
        )
    values = values.astype(np.int64, copy=False)
    if values.size and (values.min() < 1 or values.max() > num_items):
        raise ValueError(
            f"{owner}: sequence values must be items in [1, num_items={num_items}]; got values in "
            f"[{values.min()}, {values.max()}] (0 is padding and has no place in a training sequence)."
        )
    return values


def cooccurrence_matrix(sequences: Jagged, num_items: int, window: int = 1) -> sp.csr_matrix:
    """(N+1, N+1) float64 symmetric counts C_ij of items i != j at most ``window`` events apart
    inside one sequence (row and column 0, padding, stay empty)."""
    if not _is_int(num_items) or num_items < 1:
        raise _bad("num_items", "cooccurrence_matrix", "an int >= 1", num_items)
    if not _is_int(window) or window < 1:
        raise _bad("window", "cooccurrence_matrix", "an int >= 1", window)
    values = _check_sequences(sequences, int(num_items), "cooccurrence_matrix")
    seq = np.repeat(np.arange(len(sequences)), sequences.lengths)  # (E,) sequence of each event
    rows, cols = [], []
    for gap in range(1, window + 1):
        same = seq[:-gap] == seq[gap:]  # (E - gap,) both events in one sequence
        a, b = values[:-gap][same], values[gap:][same]
        keep = a != b  # a repeated item says nothing about its similarity to others
        rows += [a[keep], b[keep]]  # both directions: C is symmetric
        cols += [b[keep], a[keep]]
    n = int(num_items) + 1
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))  # duplicates are summed


def ppmi(counts: sp.spmatrix, alpha: float = 0.75) -> sp.csr_matrix:
    """Positive PMI of a co-occurrence count matrix with context smoothing ``alpha`` (see the
    module docstring); entries with PMI <= 0 are dropped."""
    C = sp.coo_matrix(counts, dtype=np.float64)
    row_sum = np.asarray(C.sum(axis=1)).ravel()  # r_i
    context = np.asarray(C.sum(axis=0)).ravel() ** alpha  # c_j ** alpha
    context /= max(context.sum(), np.finfo(np.float64).tiny)
    pmi = np.log(C.data / (row_sum[C.row] * context[C.col]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (C.row[keep], C.col[keep])), shape=C.shape)


class CooccurrenceSVD:
    """Behaviour item embeddings: rank-D SVD of the PPMI of windowed co-occurrence (module docstring).

    Args:
        config: a :class:`BehaviourConfig` (default: ``BehaviourConfig()``).

    Fitted attributes:
        embeddings_: (N+1, D) float32; unit rows for items with behaviour, zero rows for the
            padding row 0 and for items that never co-occur with another item in training.
        has_behaviour_: (N+1,) bool, which rows hold a behaviour vector.
        singular_values_: (D,) of the PPMI matrix.
        fit_time_s_: wall time of :meth:`fit`.
    """

    def __init__(self, config: BehaviourConfig | None = None) -> None:
        self.config = config

    def _config(self) -> BehaviourConfig:
        config = self.config if self.config is not None else BehaviourConfig()
        if not isinstance(config, BehaviourConfig):
            raise TypeError(
                f"CooccurrenceSVD needs a BehaviourConfig; got {type(config).__name__} instead."
            )
        return config

    def fit(self, sequences: Jagged, num_items: int) -> CooccurrenceSVD:
        """Learn the behaviour embeddings of items 1..``num_items`` from training ``sequences``.

        Raises:
            ValueError: ``num_items`` is not above D, or a sequence value is outside [1, N].
            TypeError: ``sequences`` is not a :class:`Jagged` of item ids.
        """
        from sklearn.utils.extmath import randomized_svd

        cfg = self._config()
        if not _is_int(num_items) or num_items <= cfg.dim:
            raise ValueError(
                f"CooccurrenceSVD(dim={cfg.dim}) needs more items than dimensions: the "
                f"'num_items' argument must be an int > {cfg.dim}. Got {num_items!r} instead."
            )
        start = time.perf_counter()
        counts = cooccurrence_matrix(sequences, int(num_items), cfg.window)  # (N+1, N+1)
        P = ppmi(counts, cfg.alpha)
        if P.nnz == 0:
            raise ValueError(
                "CooccurrenceSVD.fit: the training sequences hold no two distinct items within "
                f"window={cfg.window} of each other, so there is no behaviour to embed."
            )
        U, S, _ = randomized_svd(P, cfg.dim, n_iter=cfg.n_iter, random_state=cfg.seed)
        E = U * np.sqrt(S)  # (N+1, D) symmetric weighting
        has = np.asarray(counts.sum(axis=1)).ravel() > 0  # (N+1,)
        norms = np.linalg.norm(E, axis=1, keepdims=True)
        has &= norms[:, 0] > 1e-12
        E = np.where(has[:, None], E / np.maximum(norms, 1e-12), 0.0)
        self.embeddings_ = E.astype(np.float32)
        self.has_behaviour_ = has
        self.singular_values_ = S
        self.fit_time_s_ = time.perf_counter() - start
        log.info(
            "CooccurrenceSVD: %d events, %d co-occurring pairs -> %d dims for %d/%d items (%.1fs)",
            len(sequences.values),
            counts.nnz // 2,
            cfg.dim,
            int(has[1:].sum()),
            int(num_items),
            self.fit_time_s_,
        )
        return self


def fuse_with_behaviour(
    content: np.ndarray,
    behaviour: np.ndarray,
    weight: float = 2.5,
    *,
    has_behaviour: np.ndarray | None = None,
) -> np.ndarray:
    """Concatenate L2-normalised content and behaviour rows, the behaviour block scaled by
    ``weight``, and L2-normalise again (:func:`shortlist.items.fusion.fuse`).

    The inner product of two fused rows is then proportional to ``cos_content + weight**2 *
    cos_behaviour``: two items with the same text but different co-occurrences are no longer
    near-duplicates. A row without behaviour (``has_behaviour`` False, by default an all-zero
    behaviour row) is fused from its content alone; an all-zero content row with no behaviour
    (padding) stays zero.

    Args:
        content: (N, Dc) content embeddings (e.g. TfidfSvdEncoder output, or (N+1, Dc) with row 0
            padding).
        behaviour: (N, Db) behaviour embeddings with the same rows, e.g. ``CooccurrenceSVD.embeddings_``.
        weight: w >= 0, the behaviour block's weight (content weighs 1).
        has_behaviour: (N,) bool, rows that hold a behaviour vector (default: non-zero rows).

    Returns:
        (N, Dc + Db) float32.

    Raises:
        ValueError: the row counts differ, an array is not 2-D, a value is NaN or infinite, or
            the weight is negative or not finite.
    """
    content = real_matrix(content, "fuse_with_behaviour: 'content'")
    behaviour = real_matrix(behaviour, "fuse_with_behaviour: 'behaviour'")
    for name, arr in (("content", content), ("behaviour", behaviour)):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise ValueError(
                f"fuse_with_behaviour: {name!r} holds NaN or infinite values in {int(bad.sum())} "
                f"row(s) (first: row {int(np.flatnonzero(bad)[0])})."
            )
    if content.shape[0] != behaviour.shape[0]:
        raise ValueError(
            f"fuse_with_behaviour: 'content' has {content.shape[0]} rows but 'behaviour' has "
            f"{behaviour.shape[0]}; both need one row per item, in the same order."
        )
    if not _is_real(weight) or weight < 0:
        raise _bad("weight", "fuse_with_behaviour", "a finite float >= 0", weight)
    if has_behaviour is None:
        has_behaviour = behaviour.any(axis=1)
    has_behaviour = np.asarray(has_behaviour)
    if has_behaviour.dtype != bool or has_behaviour.shape != (behaviour.shape[0],):
        raise ValueError(
            f"fuse_with_behaviour: 'has_behaviour' must be a bool array of shape "
            f"({behaviour.shape[0]},); got {has_behaviour.dtype} {has_behaviour.shape}."
        )
    # fuse's convention: an all-NaN row is an absent modality
    beh = np.where(has_behaviour[:, None], behaviour.astype(np.float64), np.nan)
    if not has_behaviour.any():
        log.warning("fuse_with_behaviour: no row holds a behaviour vector; content only.")
        return fuse({"content": content}).astype(np.float32)
    # a row absent in both blocks can only be padding (all-zero content): keep it zero
    both_absent = ~has_behaviour & ~content.any(axis=1)
    beh[both_absent] = 0.0
    return fuse(
        {"content": content, "behaviour": beh}, {"content": 1.0, "behaviour": float(weight)}
    )
