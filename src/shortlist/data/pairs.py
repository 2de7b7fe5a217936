"""Behaviour pairs for QARM item alignment: Swing item-item similarity and (trigger, target) pairs.

QARM (Luo et al., arXiv 2411.11739, reference/PAPERS.md section 3) aligns item embeddings with
behaviour by in-batch contrastive training on pairs of "business-similar" items:

- **Item2Item**: high-similarity pairs from an item-to-item model, here Swing
  (:func:`swing` -> :func:`item_to_item_pairs`);
- **User2Item**: for each interaction (the target), the most similar item among the user's recent
  50 interactions (the trigger), similarity coming from existing item embeddings, from Swing, or
  plain recency (:func:`user_to_item_pairs`).

Notation: U users, N items (1..N, 0 = padding), E interactions, k neighbours per item, P pairs,
W the user-to-item window, D the embedding size; ``I_u`` the set of items of user ``u`` (after the
``max_items_per_user`` cap), ``U_i`` the set of users of item ``i`` (the users whose ``I_u`` holds
``i``) and ``S_i`` a subset of ``U_i`` of at most ``max_users_per_item`` users (the users of row
``i``; ``S_i = U_i`` when the cap does not bite). See :class:`SwingConfig` for the caps.

Swing (Yang et al., "Large Scale Product Graph Construction for Recommendation in E-commerce",
arXiv 2010.05525, 2020), with the paper's user weighting::

    sim(i, j) = sum_{u in S_i ∩ U_j} sum_{v in S_i ∩ U_j, v != u}  w_u * w_v / (alpha + |I_u ∩ I_v|)
    w_u       = (|I_u| + beta) ** -0.5          (w_u = 1 when user weighting is off)

The double sum runs over *ordered* user pairs, so each unordered pair {u, v} contributes twice (the
paper's double sum without its u = v terms); sim(i, i) is not computed. Without the user cap
(S_i = U_i) this is the paper's equation and sim is symmetric; with it, row i sums over the sampled
users of i only, as production Swing jobs do (sample an item's users, then spread each user pair's
weight over the items both hold), so sim(i, j) and sim(j, i) may differ.

Example:
    >>> neighbours = swing(data, SwingConfig(topk=20))             # doctest: +SKIP
    >>> i2i = item_to_item_pairs(neighbours, per_item=10)          # doctest: +SKIP
    >>> u2i = user_to_item_pairs(data, neighbours=neighbours)      # doctest: +SKIP
    >>> train, test = Pairs.concatenate([i2i, u2i]).holdout(0.1, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from shortlist.atomic import atomic_path
from shortlist.data._checks import _bad, _is_int, _is_real
from shortlist.data.errors import DataValidationError
from shortlist.data.schema import ITEM, USER, InteractionData

log = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1
_H_SEED, _H_USER, _H_ITEM = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


# ---------------------------------------------------------------------------------------------
# Configuration and outputs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwingConfig:
    """Parameters of :func:`swing` (see the module docstring for the formula).

    The caps bound the work of large logs, as production Swing jobs do:

    1. repeated (user, item) events are merged into one, at the item's latest position;
    2. ``max_items_per_user``: each user keeps their most recent distinct items (latest rows of
       the user's sequence; for ``order == "none"`` datasets, the last rows of the source). What
       is left is ``I_u``, which defines ``|I_u|``, ``|I_u ∩ I_v|`` and ``U_i``;
    3. ``max_users_per_item``: row ``i`` of the similarity sums over ``S_i``, the at most
       ``max_users_per_item`` users of ``U_i`` with the smallest ``hash64(seed, user, i)`` (a
       SplitMix64 mix; ties by user): a deterministic pseudo-random sample that does not depend on
       row order. The sample only chooses the user pairs of row i; it does not remove i from
       anyone's ``I_u``, so the other items of the row are not thinned (sampling both sides would
       bias every row towards rare items).

    The cost of row i is O(n_i^2 * |J_i|), n_i = |S_i| <= max_users_per_item and J_i the items
    those users hold, so ``max_users_per_item`` is the main speed knob.
    """

    alpha: float = 1.0  # smoothing of 1 / (alpha + |I_u ∩ I_v|); |I_u ∩ I_v| >= 2 for any term
    beta: float = 5.0  # user weight w_u = (|I_u| + beta) ** -0.5: damps users with few items
    user_weighting: bool = True  # False: w_u = 1 (the plain Swing of the paper's first equation)
    max_users_per_item: int | None = 300  # None: no cap
    max_items_per_user: int | None = 500  # None: no cap
    topk: int = 50  # neighbours kept per item
    seed: int = 0  # seed of the user sampling hash

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not _is_real(self.alpha) or self.alpha < 0:
            raise _bad("alpha", owner, "a finite float >= 0", self.alpha)
        if not _is_real(self.beta) or self.beta < 0:
            raise _bad("beta", owner, "a finite float >= 0", self.beta)
        if not isinstance(self.user_weighting, bool):
            raise _bad("user_weighting", owner, "a bool", self.user_weighting)
        for name in ("max_users_per_item", "max_items_per_user"):
            cap = getattr(self, name)
            if cap is not None and (not _is_int(cap) or cap < 2):
                raise _bad(name, owner, "None or an int >= 2", cap)
        if not _is_int(self.topk) or self.topk < 1:
            raise _bad("topk", owner, "an int >= 1", self.topk)
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise _bad("seed", owner, "an int in [0, 2**63)", self.seed)


@dataclass(frozen=True)
class ItemNeighbours:
    """Top-k neighbours of every item, best first.

    Attributes:
        items: (N+1, k) int32; ``items[i]`` are item ``i``'s neighbours by decreasing score (ties
            by increasing item index); 0 marks an empty slot (fewer than k neighbours). Row 0
            (padding) is empty.
        scores: (N+1, k) float32 scores of those neighbours, > 0 where ``items > 0`` and 0 elsewhere.
    """

    items: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.items.ndim != 2 or self.items.shape != self.scores.shape:
            raise ValueError(
                f"ItemNeighbours needs items and scores of one (N+1, k) shape; "
                f"got {self.items.shape} and {self.scores.shape}."
            )
        if self.items.dtype != np.int32 or self.scores.dtype != np.float32:
            raise TypeError(
                f"ItemNeighbours needs int32 items and float32 scores; got {self.items.dtype} and {self.scores.dtype}."
            )

    @property
    def num_items(self) -> int:
        """N (rows are 0..N)."""
        return self.items.shape[0] - 1

    @property
    def k(self) -> int:
        return self.items.shape[1]

    def to_sparse(self) -> sp.csr_matrix:
        """(N+1, N+1) float32 CSR matrix with ``m[i, j]`` = score of neighbour ``j`` of item ``i``."""
        rows = np.repeat(np.arange(self.items.shape[0]), self.k)
        cols, vals = self.items.ravel(), self.scores.ravel()
        keep = cols > 0
        n = self.items.shape[0]
        return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)


@dataclass(frozen=True)
class Pairs:
    """(trigger, target) item pairs for contrastive alignment.

    Attributes:
        trigger: (P,) int32 item indices in 1..N.
        target: (P,) int32 item indices in 1..N.
        weight: (P,) float32 non-negative pair weights (Swing score for item-to-item pairs, 1 for
            user-to-item pairs, summed by :meth:`deduplicate`).
        source: where the pairs come from (``"i2i_swing"``, ``"u2i_embedding"``, ``"u2i_swing"``,
            ``"u2i_recent"``, or several joined by ``"+"``).
    """

    trigger: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    source: str

    def __post_init__(self) -> None:
        arrays = {"trigger": self.trigger, "target": self.target, "weight": self.weight}
        shapes = {k: np.shape(v) for k, v in arrays.items()}
        if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
            raise ValueError(
                f"Pairs needs trigger, target and weight of one (P,) shape; got {shapes}."
            )
        for name in ("trigger", "target"):
            arr = np.asarray(arrays[name])
            if not np.issubdtype(arr.dtype, np.integer) and arr.size:
                raise TypeError(f"Pairs.{name} must hold integers; got dtype {arr.dtype}.")
            if arr.size and (arr.min() < 1 or arr.max() > np.iinfo(np.int32).max):
                raise ValueError(
                    f"Pairs.{name} must hold item indices in 1..N (0 is padding); got values in [{arr.min()}, {arr.max()}]."
                )
            object.__setattr__(self, name, arr.astype(np.int32, copy=False))
        weight = np.asarray(self.weight, dtype=np.float32)
        if weight.size and not (np.isfinite(weight).all() and weight.min() >= 0):
            raise ValueError("Pairs.weight must be finite and >= 0.")
        object.__setattr__(self, "weight", weight)
        if not isinstance(self.source, str):
            raise TypeError(f"Pairs.source must be a str; got {type(self.source).__name__}.")

    def __len__(self) -> int:
        return len(self.trigger)

    def subset(self, index: np.ndarray) -> Pairs:
        """The pairs at ``index`` (an int index array or a (P,) bool mask)."""
        return Pairs(self.trigger[index], self.target[index], self.weight[index], self.source)

    def holdout(self, fraction: float, seed: int = 0) -> tuple[Pairs, Pairs]:
        """Split at random by pair into ``(train, test)``, ``test`` holding ``round(fraction * P)`` pairs.

        Both parts keep the original order. The split is by row: a (trigger, target) that occurs in
        several rows may land on both sides; call :meth:`deduplicate` first to prevent that.
        """
        if not _is_real(fraction) or not 0.0 < fraction < 1.0:
            raise _bad("fraction", "Pairs.holdout", "a float in (0, 1)", fraction)
        if not _is_int(seed):
            raise _bad("seed", "Pairs.holdout", "an int", seed)
        n_test = round(fraction * len(self))
        perm = np.random.default_rng(seed).permutation(len(self))
        test = np.zeros(len(self), dtype=bool)
        test[perm[:n_test]] = True
        return self.subset(~test), self.subset(test)

    def deduplicate(self) -> Pairs:
        """One row per distinct (trigger, target), weights summed; rows sorted by (trigger, target)."""
        key = self.trigger.astype(np.int64) << 32 | self.target.astype(np.int64)
        uniq, inverse = np.unique(key, return_inverse=True)
        weight = np.zeros(len(uniq), dtype=np.float64)
        np.add.at(weight, inverse, self.weight)
        return Pairs(
            (uniq >> 32).astype(np.int32), (uniq & 0xFFFFFFFF).astype(np.int32), weight, self.source
        )

    @staticmethod
    def concatenate(parts: Sequence[Pairs]) -> Pairs:
        """All rows of ``parts`` in order; the source names are joined with ``"+"``."""
        if not parts:
            raise ValueError("Pairs.concatenate needs at least one Pairs; got an empty sequence.")
        return Pairs(
            np.concatenate([p.trigger for p in parts]),
            np.concatenate([p.target for p in parts]),
            np.concatenate([p.weight for p in parts]),
            "+".join(dict.fromkeys(p.source for p in parts)),
        )

    # -- Parquet ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a Parquet file (columns trigger, target, weight; ``source`` in the file metadata).

        The write is atomic: a temporary file in the same directory is renamed over ``path``.
        """
        path = Path(path)
        table = pa.table(
            {
                "trigger": pa.array(self.trigger),
                "target": pa.array(self.target),
                "weight": pa.array(self.weight),
            }
        ).replace_schema_metadata(
            {"shortlist.pairs.source": self.source, "shortlist.pairs.version": "1"}
        )
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Pairs:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DataValidationError(f"{path}: file not found (a Pairs Parquet file).")
        table = pq.read_table(path)
        missing = [c for c in ("trigger", "target", "weight") if c not in table.column_names]
        if missing:
            raise DataValidationError(
                f"{path}: missing column {missing[0]!r}; found {table.column_names}."
            )
        meta = table.schema.metadata or {}
        source = meta.get(b"shortlist.pairs.source", b"").decode()
        cols = {c: table[c].to_numpy() for c in ("trigger", "target", "weight")}
        return Pairs(cols["trigger"], cols["target"], cols["weight"], source)


# ---------------------------------------------------------------------------------------------
# Swing: caps
# ---------------------------------------------------------------------------------------------
def _hash64(seed: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(n,) uint64 SplitMix64 mix of (seed, user, item): the user-sampling key of the caps."""
    u, i = users.astype(np.uint64), items.astype(np.uint64)
    z = np.uint64(seed * _H_SEED & _MASK64) + u * np.uint64(_H_USER) + i * np.uint64(_H_ITEM)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _hash64_py(seed: int, user: int, item: int) -> int:
    """Plain-Python twin of :func:`_hash64` (for :func:`swing_reference`)."""
    z = (seed * _H_SEED + user * _H_USER + item * _H_ITEM) & _MASK64
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & _MASK64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z


def _recent_sets(data: InteractionData, config: SwingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The sets I_u (steps 1-2 of :class:`SwingConfig`) as (user, item) (M,) int64, grouped by user."""
    users = data.interactions[USER].to_numpy().astype(np.int64)
    items = data.interactions[ITEM].to_numpy().astype(np.int64)
    assert users.size == 0 or (np.diff(users) >= 0).all(), "interactions must be sorted by user"
    n_rows = len(users)
    # 1. dedupe (user, item), keeping each pair's latest row
    key = users * (data.num_items + 1) + items
    _, first_in_reversed = np.unique(key[::-1], return_index=True)
    rows = np.sort(n_rows - 1 - first_in_reversed)  # (M,) grouped by user, oldest first
    users, items = users[rows], items[rows]
    # 2. most recent max_items_per_user items of each user
    if config.max_items_per_user is not None and users.size:
        ends = np.searchsorted(users, users, side="right")  # (M,) one past the user's last row
        keep = ends - np.arange(len(users)) <= config.max_items_per_user
        users, items = users[keep], items[keep]
    return users, items


def _row_users(
    users: np.ndarray, items: np.ndarray, config: SwingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The samples S_i (step 3 of :class:`SwingConfig`) as (user, item) int64 pairs, a subset of
    the (user, item) pairs of I_u."""
    if config.max_users_per_item is None or users.size == 0:
        return users, items
    order = np.lexsort((users, _hash64(config.seed, users, items), items))
    users, items = users[order], items[order]  # by item, then hash key, then user
    starts = np.searchsorted(items, items, side="left")
    keep = np.arange(len(items)) - starts < config.max_users_per_item
    return users[keep], items[keep]


# ---------------------------------------------------------------------------------------------
# Swing: fast path and reference
# ---------------------------------------------------------------------------------------------
def _top_k(cand: np.ndarray, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score > 0) candidates by decreasing score, ties by increasing item index."""
    nz = score > 0
    cand, score = cand[nz], score[nz]
    if len(cand) > k:
        # keep everything tied with the k-th score so the tie-break below is exact
        kth = np.partition(score, len(score) - k)[len(score) - k]
        keep = score >= kth
        cand, score = cand[keep], score[keep]
    order = np.lexsort((cand, -score))[:k]
    return cand[order], score[order]


def swing(data: InteractionData, config: SwingConfig | None = None) -> ItemNeighbours:
    """Swing item-item similarity (Yang et al. 2020; formula in the module docstring), top-k per item.

    For each item ``i`` with row users ``S_i`` (n_i of them) the row ``sim(i, .)`` is computed
    with dense BLAS on the items ``J_i`` those users hold (R: the (U, N+1) 0/1 matrix of the I_u)::

        B = R[S_i][:, J_i]                          # (n_i, |J_i|) 0/1 interaction block
        C = B @ B.T                                  # (n_i, n_i)   |I_u ∩ I_v|
        K = (w w^T) / (alpha + C), diag(K) = 0       # (n_i, n_i)   pair weights, u != v
        sim(i, j) = sum_{u, v} K[u, v] B[u, j] B[v, j] = colsum(B * (K @ B))[j]

    The scores are read only at the nonzeros of B. Memory is one (n_i, |J_i|) float32 block at a
    time (|J_i| <= min(N, n_i * max_items_per_user)) plus the (N+1, k) output. Scores are computed
    in float32 (C is exact; the sums carry ~1e-6 relative rounding). ML-1M (6,040 users, 3,706
    items, 1M events) takes ~15 s on one core with the default caps, ~85 s without caps.

    Args:
        data: the dataset; repeated (user, item) events count once.
        config: :class:`SwingConfig` (defaults if None).

    Returns:
        :class:`ItemNeighbours` with ``k = config.topk``.
    """
    config = config or SwingConfig()
    t0 = time.perf_counter()
    n_users, n_items = data.num_users, data.num_items
    users, items = _recent_sets(data, config)
    ones = np.ones(len(users), dtype=np.float32)
    by_user = sp.csr_matrix((ones, (users, items)), shape=(n_users, n_items + 1))  # R: the I_u
    by_user.sort_indices()
    row_u, row_i = _row_users(users, items, config)
    row_users = sp.csc_matrix(
        (np.ones(len(row_u), dtype=np.float32), (row_u, row_i)), shape=(n_users, n_items + 1)
    )  # column i: S_i
    degree = np.diff(by_user.indptr)  # (U,) |I_u|
    if config.user_weighting:
        weight = np.zeros(n_users, dtype=np.float64)  # users left with no item keep weight 0
        has = degree > 0
        weight[has] = (degree[has] + config.beta) ** -0.5
    else:
        weight = np.ones(n_users, dtype=np.float64)
    weight = weight.astype(np.float32)
    alpha = np.float32(config.alpha)

    k = config.topk
    out_items = np.zeros((n_items + 1, k), dtype=np.int32)
    out_scores = np.zeros((n_items + 1, k), dtype=np.float32)
    u_ptr, u_idx = by_user.indptr, by_user.indices
    col_pos = np.zeros(n_items + 1, dtype=np.int64)  # scratch: item -> its column in the block
    for i in range(1, n_items + 1):
        rows = row_users.indices[row_users.indptr[i] : row_users.indptr[i + 1]]  # (n_i,) S_i
        n_i = len(rows)
        if n_i < 2:
            continue
        # gather the CSR rows of S_i: column indices (nnz,) and their row numbers (nnz,)
        starts, lens = u_ptr[rows], u_ptr[rows + 1] - u_ptr[rows]
        ends_cum = np.cumsum(lens)
        cols = u_idx[np.arange(ends_cum[-1]) + np.repeat(starts - (ends_cum - lens), lens)]
        row_of = np.repeat(np.arange(n_i), lens)
        # J_i without sorting (O(nnz), not O(N)): one representative nonzero per distinct item
        col_pos[cols] = np.arange(len(cols))
        touched = cols[col_pos[cols] == np.arange(len(cols))]  # (|J_i|,) distinct items
        col_pos[touched] = np.arange(len(touched))
        # only items with >= 2 users of S_i can score (J'); i is not its own neighbour
        shared = np.bincount(col_pos[cols], minlength=len(touched)) >= 2  # (|J_i|,)
        shared[col_pos[i]] = False
        n_shared = int(shared.sum())
        if n_shared == 0:
            continue
        touched = np.concatenate([touched[shared], touched[~shared]])  # J' first
        col_pos[touched] = np.arange(len(touched))
        pos = col_pos[cols]  # (nnz,) block column of each nonzero
        block = np.zeros((n_i, len(touched)), dtype=np.float32)  # (n_i, |J_i|)
        block[row_of, pos] = 1.0
        inter = block @ block.T  # (n_i, n_i) |I_u ∩ I_v|
        w = weight[rows]
        pair = np.outer(w, w) / (alpha + inter)  # (n_i, n_i); inter >= 1 (all share i)
        np.fill_diagonal(pair, 0.0)
        spread = pair @ block[:, :n_shared]  # (n_i, |J'|) sum_v K[u, v] B[v, j]
        nz = pos < n_shared  # the nonzeros (u, j) of B with j in J'
        col = pos[nz]
        score = np.bincount(col, weights=spread[row_of[nz], col], minlength=n_shared)  # (|J'|,)
        top, top_score = _top_k(touched[:n_shared], score, k)
        out_items[i, : len(top)] = top
        out_scores[i, : len(top)] = top_score
    log.info(
        "swing: %d users, %d items, %d (user, item) pairs, %d in rows -> top-%d neighbours in %.1fs",
        n_users,
        n_items,
        len(users),
        len(row_u),
        k,
        time.perf_counter() - t0,
    )
    return ItemNeighbours(out_items, out_scores)


def swing_reference(data: InteractionData, config: SwingConfig | None = None) -> ItemNeighbours:
    """Plain-Python Swing with explicit loops, for tests on tiny data (O(N^2 * U^2)).

    Applies the same caps as :func:`swing` (with a plain-Python copy of the sampling hash) and the
    formula of the module docstring term by term, in float64.
    """
    config = config or SwingConfig()
    sequences: dict[int, list[int]] = {}
    for u, i in zip(
        data.interactions[USER].to_list(), data.interactions[ITEM].to_list(), strict=True
    ):
        sequences.setdefault(u, []).append(i)
    # 1-2. distinct items, most recent first, capped per user
    recent: dict[int, list[int]] = {}
    for u, seq in sequences.items():
        kept: list[int] = []
        for i in reversed(seq):
            if i not in kept and (
                config.max_items_per_user is None or len(kept) < config.max_items_per_user
            ):
                kept.append(i)
        recent[u] = kept
    item_sets = {u: set(kept) for u, kept in recent.items()}  # I_u
    user_sets: dict[int, set[int]] = {}  # U_i
    for u, kept in recent.items():
        for i in kept:
            user_sets.setdefault(i, set()).add(u)
    # 3. the users of row i: S_i, the smallest hash keys of U_i
    row_sets: dict[int, set[int]] = {}
    for i, us in user_sets.items():
        ranked = sorted(us, key=lambda u, i=i: (_hash64_py(config.seed, u, i), u))
        row_sets[i] = set(ranked[: config.max_users_per_item])

    def w(u: int) -> float:
        return (len(item_sets[u]) + config.beta) ** -0.5 if config.user_weighting else 1.0

    n_items, k = data.num_items, config.topk
    out_items = np.zeros((n_items + 1, k), dtype=np.int32)
    out_scores = np.zeros((n_items + 1, k), dtype=np.float32)
    for i in range(1, n_items + 1):
        row: list[tuple[float, int]] = []
        for j in range(1, n_items + 1):
            if j == i:
                continue
            common = row_sets.get(i, set()) & user_sets.get(j, set())  # S_i ∩ U_j
            s = 0.0
            for u in common:
                for v in common:
                    if u != v:
                        s += w(u) * w(v) / (config.alpha + len(item_sets[u] & item_sets[v]))
            if s > 0:
                row.append((-s, j))
        row.sort()
        for slot, (neg, j) in enumerate(row[:k]):
            out_items[i, slot] = j
            out_scores[i, slot] = -neg
    return ItemNeighbours(out_items, out_scores)


# ---------------------------------------------------------------------------------------------
# (trigger, target) pairs
# ---------------------------------------------------------------------------------------------
def item_to_item_pairs(
    neighbours: ItemNeighbours,
    *,
    min_score: float = 0.0,
    per_item: int | None = None,
    symmetric_once: bool = False,
) -> Pairs:
    """QARM Item2Item pairs: (item, neighbour) for the top Swing neighbours of every item.

    Args:
        neighbours: from :func:`swing`.
        min_score: keep neighbours with score >= min_score (and > 0).
        per_item: keep at most this many neighbours per item (the best ones); None: all k.
        symmetric_once: keep one row per unordered pair {i, j} (the first in (trigger, rank)
            order), instead of both (i, j) and (j, i) when each lists the other.

    Returns:
        :class:`Pairs` with ``weight`` = Swing score and ``source = "i2i_swing"``, ordered by
        trigger then rank.
    """
    if not _is_real(min_score) or min_score < 0:
        raise _bad("min_score", "item_to_item_pairs", "a finite float >= 0", min_score)
    if per_item is not None and (not _is_int(per_item) or per_item < 1):
        raise _bad("per_item", "item_to_item_pairs", "None or an int >= 1", per_item)
    n_rows, k = neighbours.items.shape
    trigger = np.repeat(np.arange(n_rows, dtype=np.int32), k)
    rank = np.tile(np.arange(k), n_rows)
    target, score = neighbours.items.ravel(), neighbours.scores.ravel()
    keep = (trigger > 0) & (target > 0) & (score > 0) & (score >= min_score)
    if per_item is not None:
        keep &= rank < per_item
    trigger, target, score = trigger[keep], target[keep], score[keep]
    if symmetric_once and len(trigger):
        lo, hi = (
            np.minimum(trigger, target).astype(np.int64),
            np.maximum(trigger, target).astype(np.int64),
        )
        _, first = np.unique(lo << 32 | hi, return_index=True)
        first = np.sort(first)
        trigger, target, score = trigger[first], target[first], score[first]
    return Pairs(trigger, target, score, "i2i_swing")


class _PairScoreLookup:
    """score(a, b) from top-k lists, symmetrized: max of b's score in a's list and a's in b's."""

    def __init__(self, neighbours: ItemNeighbours) -> None:
        n_rows, k = neighbours.items.shape
        a = np.repeat(np.arange(n_rows, dtype=np.int64), k)
        b = neighbours.items.ravel().astype(np.int64)
        s = neighbours.scores.ravel()
        keep = (a > 0) & (b > 0)
        a, b, s = a[keep], b[keep], s[keep]
        key = np.concatenate([a * n_rows + b, b * n_rows + a])
        score = np.concatenate([s, s])
        order = np.lexsort((-score, key))  # by key, best score first
        key, score = key[order], score[order]
        first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
        self.keys, self.scores, self.n_rows = key[first], score[first], n_rows

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scores of pairs (a, b) of any broadcastable shape; 0 where b is not a neighbour of a."""
        if len(self.keys) == 0:
            return np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=np.float32)
        q = a.astype(np.int64) * self.n_rows + b.astype(np.int64)
        pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        return np.where(self.keys[pos] == q, self.scores[pos], np.float32(0.0))


def user_to_item_pairs(
    data: InteractionData,
    *,
    window: int = 50,
    item_embeddings: np.ndarray | None = None,
    neighbours: ItemNeighbours | None = None,
    block_bytes: int = 64 << 20,
) -> Pairs:
    """QARM User2Item pairs: each interaction (target) with the most similar of the user's recent items.

    For the interaction at position t >= 1 of a user's sequence, the candidates are the items at
    positions t-window .. t-1 other than the target itself; the trigger is the candidate with the
    highest similarity to the target, ties going to the most recent. Similarity is:

    - the cosine of ``item_embeddings`` rows, when given (QARM uses the embeddings of an existing
      U2I retrieval model); ``neighbours`` is then ignored;
    - else the Swing score of ``neighbours`` (symmetrized: either item listing the other); when no
      candidate is a neighbour of the target, the most recent candidate;
    - else recency alone (the most recent candidate).

    A position whose window holds only the target (or nothing) yields no pair. Positions are
    processed in blocks with NumPy fancy indexing: a block gathers (B, W) candidates and, with
    embeddings, (B, W, D) vectors, sized to ``block_bytes``.

    Args:
        data: the dataset; sequences in its row order (a warning is logged for ``order == "none"``,
            whose row order carries no time).
        window: W, how many previous items are candidates (QARM: the recent 50).
        item_embeddings: (N+1, D) float array, row i for item i (row 0 unused).
        neighbours: Swing neighbours from :func:`swing`.
        block_bytes: memory budget of one block's gathered arrays.

    Returns:
        :class:`Pairs` in interaction order with weight 1 and source ``"u2i_embedding"``,
        ``"u2i_swing"`` or ``"u2i_recent"``.
    """
    if not _is_int(window) or window < 1:
        raise _bad("window", "user_to_item_pairs", "an int >= 1", window)
    n_items = data.num_items
    unit: np.ndarray | None = None
    lookup: _PairScoreLookup | None = None
    if item_embeddings is not None:
        emb = np.asarray(item_embeddings)
        if emb.ndim != 2 or emb.shape[0] != n_items + 1:
            raise ValueError(
                f"item_embeddings must have shape (N+1, D) = ({n_items + 1}, D) for {data.name}; got {emb.shape}."
            )
        if not np.isfinite(emb).all():
            raise ValueError("item_embeddings holds NaN or infinite values.")
        unit = emb.astype(np.float32)
        norms = np.linalg.norm(unit, axis=1, keepdims=True)
        unit /= np.maximum(norms, 1e-12)  # (N+1, D) unit rows; zero rows stay zero
        source = "u2i_embedding"
        if neighbours is not None:
            log.info("user_to_item_pairs: item_embeddings given, so neighbours are not used")
    elif neighbours is not None:
        if neighbours.num_items != n_items:
            raise ValueError(
                f"neighbours cover {neighbours.num_items} items but {data.name} has {n_items}."
            )
        lookup = _PairScoreLookup(neighbours)
        source = "u2i_swing"
    else:
        source = "u2i_recent"
    if data.order == "none":
        log.warning(
            "user_to_item_pairs: %s has order='none', so 'previous items' follow row order",
            data.name,
        )

    seqs = data.sequences()
    values = seqs.values.astype(np.int32)  # (E,)
    lengths = seqs.lengths
    start = np.repeat(seqs.offsets[:-1], lengths)  # (E,) first row of each row's user
    positions = np.flatnonzero(np.arange(len(values)) > start)  # rows at t >= 1
    per_row = window * (8 + 4 + 4 + 1) + (window * unit.shape[1] * 4 if unit is not None else 0)
    block = max(1, block_bytes // per_row)
    lags = np.arange(1, window + 1)  # most recent first, so argmax ties go to the most recent
    triggers, targets = [], []
    for b0 in range(0, len(positions), block):
        pos = positions[b0 : b0 + block]  # (B,)
        idx = pos[:, None] - lags[None, :]  # (B, W)
        valid = idx >= start[pos][:, None]
        cand = values[np.maximum(idx, 0)]  # (B, W)
        tgt = values[pos]  # (B,)
        valid &= cand != tgt[:, None]
        if unit is not None:
            sim = np.einsum("bd,bwd->bw", unit[tgt], unit[cand])  # (B, W) cosine
        elif lookup is not None:
            sim = lookup(tgt[:, None], cand)  # (B, W) Swing score, 0 = not a neighbour
        else:
            sim = np.zeros(cand.shape, dtype=np.float32)
        sim = np.where(valid, sim, -np.inf)
        best = np.argmax(sim, axis=1)  # (B,)
        has = valid.any(axis=1)
        triggers.append(cand[np.arange(len(pos)), best][has])
        targets.append(tgt[has])
    trigger = np.concatenate(triggers) if triggers else np.zeros(0, np.int32)
    target = np.concatenate(targets) if targets else np.zeros(0, np.int32)
    log.info(
        "user_to_item_pairs: %d pairs from %d interactions (%s)", len(trigger), len(values), source
    )
    return Pairs(trigger, target, np.ones(len(trigger), dtype=np.float32), source)
