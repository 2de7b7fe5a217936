"""Quantizers: item embeddings -> short tuples of discrete codes (semantic IDs).

Notation: N items (rows of X), D embedding dimensions, L code positions per item (levels, or
parallel sub-codebooks, or neighbour slots), K codes per position (``codebook_size``).

Every quantizer follows scikit-learn's conventions: ``__init__`` only stores its arguments, which
are validated by ``fit``; ``fit(X) -> self``; learned state ends in ``_``; using an unfitted one
raises :class:`NotFittedError`. All of them offer

- ``encode(X (N, D)) -> (N, L) int64`` codes in [0, K),
- ``decode(codes (N, L)) -> (N, D) float32``, the reconstruction of X from its codes,
- ``n_levels`` (L) and ``codebook_size`` (K).

The quantizers, registered in :data:`QUANTIZERS`:

- :class:`ResidualKMeans` ("rq-kmeans", QARM's RQ-Kmeans / OneRec's tokenizer): k-means on X, then
  k-means on the residuals X - c1, and so on; no training loop and no decoder. ``balanced=True``
  assigns points under a capacity of ceil(N/K) per centroid (see :func:`balanced_assign`), and
  ``unique_last_level=True`` keeps items with the same first L-1 codes apart at the last level.
- :class:`RQVAE` ("rq-vae", TIGER): an MLP auto-encoder whose latent is residual-quantized.
- :class:`ParallelSubCodebooks` ("parallel", Kelix's tokenizer transferred to items): the (projected)
  embedding is cut into L sub-vectors, each quantized by its own SimVQ codebook; codes are L
  independent sub-codes, not a residual hierarchy.
- :class:`NearestItemsCode` ("nearest-items", QARM's VQ code): the codebook is a pool of item
  embeddings and an item's code is the ids of its k nearest pool items (a set, not a hierarchy).

Example:
    >>> X = TfidfSvdEncoder(256).fit(texts).encode(texts)        # (N, 256)
    >>> rq = ResidualKMeans(n_levels=3, codebook_size=256, balanced=True).fit(X)
    >>> codes = rq.encode(X)                                      # (N, 3) int64
    >>> X_hat = rq.decode(codes)                                  # (N, 256)
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from shortlist.items.encoders import NotFittedError
from shortlist.registry import Registry

log = logging.getLogger(__name__)

QUANTIZERS: Registry[type[Quantizer]] = Registry("quantizer")


# -- shared checks -------------------------------------------------------------------------------
def _check_int(owner: object, name: str, value: Any, low: int, high: int | None = None) -> None:
    """scikit-learn's message form for a bad integer parameter."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    ok = ok and value >= low and (high is None or value <= high)
    if not ok:
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(
            f"The {name!r} parameter of {type(owner).__name__} must be an int {bounds}. "
            f"Got {value!r} instead."
        )


def _check_float(
    owner: object, name: str, value: Any, low: float, high: float | None = None
) -> None:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(
            f"The {name!r} parameter of {type(owner).__name__} must be a float {bounds}. "
            f"Got {value!r} instead."
        )


def check_embeddings(X: Any, owner: str, n_features: int | None = None) -> np.ndarray:
    """X as a C-contiguous (N, D) float32 array with N >= 1 and only finite values."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{owner} expects a 2-d (N, D) array of embeddings, got shape {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{owner} got an empty array of shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{owner} expects real numbers, got dtype {X.dtype}.")
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{owner}: X contains NaN or infinity in {rows.size} rows (first bad row {rows[0]}); "
            "fix the embeddings (e.g. an empty text or a failed encoder) before quantizing."
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{owner}: X has {X.shape[1]} features, but it was fitted with {n_features}."
        )
    return X


def check_codes(codes: Any, owner: str, n_levels: int, codebook_size: int) -> np.ndarray:
    """codes as an (N, L) int64 array with values in [0, K)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != n_levels:
        raise ValueError(f"{owner} expects codes of shape (N, {n_levels}), got {codes.shape}.")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"{owner} expects integer codes, got dtype {codes.dtype}.")
    codes = codes.astype(np.int64, copy=False)
    if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
        raise ValueError(
            f"{owner}: codes must lie in [0, {codebook_size}), got values in "
            f"[{codes.min()}, {codes.max()}]."
        )
    return codes


def squared_distances(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances between rows of X (N, D) and C (K, D), clipped at 0."""
    d = (X * X).sum(1, keepdims=True) - 2.0 * (X @ C.T) + (C * C).sum(1)[None, :]
    return np.maximum(d, 0.0, out=d)


def nearest(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(N,) index of each row's nearest centroid (exact L2 search with faiss)."""
    import faiss

    index = faiss.IndexFlatL2(C.shape[1])
    index.add(np.ascontiguousarray(C, dtype=np.float32))
    _, ids = index.search(np.ascontiguousarray(X, dtype=np.float32), 1)
    return ids[:, 0].astype(np.int64)


def kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007): (k, D) rows of X, each drawn with
    probability proportional to its squared distance to the nearest centre drawn so far."""
    n = X.shape[0]
    centres = np.empty((k, X.shape[1]), dtype=np.float32)
    centres[0] = X[rng.integers(n)]
    closest = ((X - centres[0]) ** 2).sum(1)
    for j in range(1, k):
        total = float(closest.sum())
        if total <= 0:  # fewer distinct points than centres: repeat points
            centres[j] = X[rng.integers(n)]
            continue
        i = int(np.searchsorted(np.cumsum(closest, dtype=np.float64), rng.random() * total))
        centres[j] = X[min(i, n - 1)]
        np.minimum(closest, ((X - centres[j]) ** 2).sum(1), out=closest)
    return centres


def kmeans(
    X: np.ndarray, k: int, *, niter: int = 20, nredo: int = 1, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Lloyd's k-means with faiss from k-means++ seeds; the best of ``nredo`` runs.

    Returns the (k, D) centroids and their objective (sum of squared distances)."""
    import faiss

    n, d = X.shape
    if n < k:
        raise ValueError(f"k-means with k={k} needs at least {k} points; got {n}.")
    best: tuple[np.ndarray, float] | None = None
    for redo in range(nredo):
        rng = np.random.default_rng(seed + 7919 * redo)
        init = kmeans_plus_plus(X, k, rng)
        km = faiss.Kmeans(
            d,
            k,
            niter=niter,
            seed=seed + redo,
            verbose=False,
            min_points_per_centroid=1,  # silence faiss's "please provide more points" warning
            max_points_per_centroid=max(256, -(-n // k)),  # never subsample
        )
        km.train(X, init_centroids=init)
        C = np.ascontiguousarray(km.centroids, dtype=np.float32)
        obj = float(squared_distances(X, C).min(1).sum())
        if best is None or obj < best[1]:
            best = (C, obj)
    assert best is not None
    return best


def balanced_assign(
    dist: np.ndarray, capacity: int | np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Assign N points to K centroids with at most ``capacity`` points per centroid.

    Method: deferred acceptance (Gale-Shapley with points proposing). Every unplaced point
    proposes to its nearest centroid it has not yet proposed to; each centroid keeps the
    ``capacity`` closest of the points it holds and the new proposers, and rejects the rest, who
    propose again in the next round. The result is stable: no point and centroid would both
    rather be matched to each other than to what they got; among stable assignments it is the best
    for every point. Ties break by point index, so the result is deterministic. Costs
    O(N K log K) for the preference lists plus rounds of O(N log N), and O(N K) memory.

    With ``groups``, capacities hold per (group, centroid) pair instead: points of different groups
    never compete, and ``capacity`` may give one value per group.

    Args:
        dist: (N, K) costs, e.g. squared distances.
        capacity: the most points one centroid may take (per group: an int or a (G,) array).
        groups: optional (N,) group of each point in [0, G).

    Returns:
        (N,) int64 centroid of each point.
    """
    n, k = dist.shape
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if n else 1
    cap = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (n_groups,))
    group_sizes = np.bincount(groups, minlength=n_groups)
    if (k * cap < group_sizes).any():
        g = int(np.flatnonzero(k * cap < group_sizes)[0])
        raise ValueError(
            f"capacity {cap[g]} x {k} centroids cannot hold the {group_sizes[g]} points of group {g}."
        )
    pref = np.argsort(dist, axis=1, kind="stable").astype(np.int32)  # (N, K) nearest first
    tried = np.zeros(n, dtype=np.int64)  # how many centroids each point has proposed to
    held = np.full(n, -1, dtype=np.int64)  # current tentative centroid, -1 = unplaced
    free = np.arange(n)
    while free.size:
        target = pref[free, tried[free]].astype(np.int64)
        tried[free] += 1
        held[free] = target
        # re-rank every point held by a (group, centroid) slot that just received proposals
        placed = np.flatnonzero(held >= 0)
        placed_slot = groups[placed] * k + held[placed]
        touched = np.isin(placed_slot, groups[free] * k + target)
        pool, slot = placed[touched], placed_slot[touched]
        order = np.lexsort((pool, dist[pool, held[pool]], slot))  # by slot, distance, then id
        pool, slot = pool[order], slot[order]
        starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        rank = np.arange(pool.size) - np.repeat(starts, np.diff(np.r_[starts, pool.size]))
        free = pool[rank >= cap[groups[pool]]]
        held[free] = -1
    return held


def assign_codes(
    R: np.ndarray,
    C: np.ndarray,
    prefix: np.ndarray | None = None,
    *,
    balanced: bool = False,
    unique: bool = False,
    capacity_factor: float = 1.0,
) -> np.ndarray:
    """One code position for the rows of R (N, d) against the K codes C (K, d).

    - neither flag: each row's nearest code;
    - ``balanced``: at most ceil(capacity_factor * N / K) rows per code (:func:`balanced_assign`);
    - ``unique``: rows with the same earlier codes ``prefix`` (N, l) compete for the codes inside
      their bucket, at most ceil(capacity_factor * bucket / K) per code (1 while a bucket holds at
      most K rows), so rows of one bucket get distinct codes. With both flags the bucket capacity
      applies (it is never looser than the level-wide one).
    """
    n, K = R.shape[0], C.shape[0]
    if unique:
        if prefix is None or prefix.shape[1] == 0:
            groups = np.zeros(n, dtype=np.int64)
        else:
            _, groups = np.unique(prefix, axis=0, return_inverse=True)
            groups = groups.reshape(-1)
        capacity = np.ceil(capacity_factor * np.bincount(groups) / K).astype(np.int64)
        return balanced_assign(squared_distances(R, C), np.maximum(capacity, 1), groups)
    if balanced:
        return balanced_assign(squared_distances(R, C), max(1, math.ceil(capacity_factor * n / K)))
    return nearest(R, C)


class Quantizer(ABC):
    """Base of every quantizer: input checks, the fitted check and the shared interface."""

    n_levels: int
    codebook_size: int

    @abstractmethod
    def fit(self, X: np.ndarray) -> Quantizer: ...

    @abstractmethod
    def encode(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray: ...

    def fit_encode(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).encode(X)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(X) before using it."
            )

    def _check_X(self, X: Any, method: str, *, fitting: bool = False) -> np.ndarray:
        owner = f"{type(self).__name__}.{method}"
        if fitting:
            return check_embeddings(X, owner)
        self._check_fitted()
        return check_embeddings(X, owner, self.n_features_in_)

    def reconstruction_error(self, X: np.ndarray) -> float:
        """Mean over rows of ||x - decode(encode(x))||^2."""
        X = self._check_X(X, "reconstruction_error")
        return float(((X - self.decode(self.encode(X))) ** 2).sum(1).mean())


# -- residual k-means ----------------------------------------------------------------------------
@QUANTIZERS.register("rq-kmeans")
class ResidualKMeans(Quantizer):
    """Residual k-means (QARM's RQ-Kmeans, OneRec's tokenizer): level l clusters the residuals left
    by levels 1..l-1, so an item's code is coarse-to-fine and X ~ C_1[c_1] + ... + C_L[c_L].

    Each level runs Lloyd's algorithm with faiss (k-means++ seeds, ``niter`` iterations, best of
    ``nredo``) and assigns every row to its nearest centroid. Two optional constraints change the
    assignment; both use deferred acceptance (:func:`balanced_assign`), so a row that loses its
    nearest centroid to closer rows takes its nearest centroid with room left:

    - ``balanced=True``: at most ceil(capacity_factor * N / K) rows per centroid at every level,
      so the codes are spread evenly (high utilisation and entropy, fewer collisions).
    - ``unique_last_level=True``: at the last level, rows that share the first L-1 codes compete
      for the last-level centroids with a capacity of ceil(capacity_factor * bucket / K) inside
      their bucket, i.e. 1 while a bucket holds at most K rows. Two items then only share a full
      code when their bucket is larger than K; the last code is the nearest free centroid, a
      semantic tie-break in place of TIGER's extra counter level (LC-Rec resolves conflicts at
      the last level in a similar spirit, with Sinkhorn-Knopp).

    Under a constraint, each level alternates ``balance_iter`` times between the constrained
    assignment and moving every centroid to the mean of its rows; the codes are the constrained
    assignment with the final centroids. The constraints cost some reconstruction error.

    Args:
        n_levels: L, residual levels.
        codebook_size: K, centroids per level.
        niter, nredo, seed: k-means iterations, restarts (the best objective is kept) and seed.
        balanced: capacity ceil(capacity_factor * N / K) per centroid at every level.
        unique_last_level: capacity per (first L-1 codes, centroid) at the last level.
        capacity_factor: >= 1; slack of both capacities.
        balance_iter: constrained assignment / centroid update rounds per level.

    Fitted attributes: ``codebooks_`` (L, K, D), ``labels_`` (N, L) codes of the fitted rows,
    ``inertia_`` (L,) mean squared residual norm after each level, ``n_features_in_``.
    """

    def __init__(
        self,
        n_levels: int = 3,
        codebook_size: int = 256,
        *,
        niter: int = 20,
        nredo: int = 1,
        balanced: bool = False,
        unique_last_level: bool = False,
        capacity_factor: float = 1.0,
        balance_iter: int = 5,
        seed: int = 0,
    ) -> None:
        self.n_levels = n_levels
        self.codebook_size = codebook_size
        self.niter = niter
        self.nredo = nredo
        self.balanced = balanced
        self.unique_last_level = unique_last_level
        self.capacity_factor = capacity_factor
        self.balance_iter = balance_iter
        self.seed = seed

    def _validate_params(self) -> None:
        _check_int(self, "n_levels", self.n_levels, 1, 8)
        _check_int(self, "codebook_size", self.codebook_size, 2, 1 << 20)
        _check_int(self, "niter", self.niter, 1)
        _check_int(self, "nredo", self.nredo, 1)
        _check_int(self, "balance_iter", self.balance_iter, 0)
        _check_int(self, "seed", self.seed, 0)
        _check_float(self, "capacity_factor", self.capacity_factor, 1.0)

    def _assign(
        self, R: np.ndarray, C: np.ndarray, prefix: np.ndarray, level: int, constrained: bool
    ) -> np.ndarray:
        return assign_codes(
            R,
            C,
            prefix,
            balanced=constrained and self.balanced,
            unique=constrained and self.unique_last_level and level == self.n_levels - 1,
            capacity_factor=self.capacity_factor,
        )

    def fit(self, X: np.ndarray) -> ResidualKMeans:
        self._validate_params()
        X = self._check_X(X, "fit", fitting=True)
        n, K = X.shape[0], self.codebook_size
        if n < K:
            raise ValueError(
                f"ResidualKMeans(codebook_size={K}) needs at least {K} rows to fit; got {n}."
            )
        R = X.copy()  # (N, D) residuals
        labels = np.empty((n, self.n_levels), dtype=np.int64)
        codebooks, inertia = [], []
        for level in range(self.n_levels):
            t0 = time.perf_counter()
            C, _ = kmeans(R, K, niter=self.niter, nredo=self.nredo, seed=self.seed + 1000 * level)
            prefix = labels[:, :level]
            if self.balanced or (self.unique_last_level and level == self.n_levels - 1):
                for _ in range(self.balance_iter):
                    lab = self._assign(R, C, prefix, level, constrained=True)
                    counts = np.bincount(lab, minlength=K)
                    sums = np.zeros_like(C)
                    np.add.at(sums, lab, R)
                    used = counts > 0  # a centroid left empty keeps its place
                    C[used] = sums[used] / counts[used, None]
            labels[:, level] = self._assign(R, C, prefix, level, constrained=True)
            R = R - C[labels[:, level]]
            codebooks.append(C)
            inertia.append(float((R * R).sum(1).mean()))
            log.info(
                "ResidualKMeans level %d: %d/%d codes used, residual %.4f (%.1fs)",
                level + 1,
                np.unique(labels[:, level]).size,
                K,
                inertia[-1],
                time.perf_counter() - t0,
            )
        self.codebooks_ = np.stack(codebooks)  # (L, K, D)
        self.labels_ = labels  # (N, L)
        self.inertia_ = np.asarray(inertia)
        self.n_features_in_ = X.shape[1]
        return self

    def encode(self, X: np.ndarray, *, constrained: bool = True) -> np.ndarray:
        """(N, L) int64 codes.

        With the fitted constraints (``balanced``, ``unique_last_level``) and ``constrained=True``,
        the rows of this X are assigned jointly under the capacities, so a row's code depends on
        the other rows; encoding the fitted X reproduces ``labels_``. ``constrained=False`` gives
        plain nearest-centroid codes, a function of each row alone.
        """
        X = self._check_X(X, "encode")
        R = X.copy()
        codes = np.empty((X.shape[0], self.n_levels), dtype=np.int64)
        for level, C in enumerate(self.codebooks_):
            codes[:, level] = self._assign(R, C, codes[:, :level], level, constrained)
            R -= C[codes[:, level]]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._check_fitted()
        codes = check_codes(codes, "ResidualKMeans.decode", self.n_levels, self.codebook_size)
        out = np.zeros((codes.shape[0], self.n_features_in_), dtype=np.float32)
        for level, C in enumerate(self.codebooks_):
            out += C[codes[:, level]]
        return out


# -- torch helpers shared by the two trained quantizers --------------------------------------------
def _torch_kmeans_init(R: Any, k: int, seed: int) -> Any:
    """k-means centroids (k, d) of the rows of a torch tensor, as a torch tensor."""
    import torch

    C, _ = kmeans(R.detach().cpu().numpy().astype(np.float32), k, niter=20, seed=seed)
    return torch.from_numpy(C)


def _batches(n: int, batch_size: int, generator: Any) -> list[Any]:
    import torch

    perm = torch.randperm(n, generator=generator)
    return list(perm.split(batch_size))


def _residual_codes(q: Any, R: np.ndarray, E: np.ndarray, constrained: bool) -> np.ndarray:
    """Residual quantization of the rows of R (N, d) with codebooks E (L, K, d) under the
    quantizer's assignment constraints."""
    R = np.ascontiguousarray(R, dtype=np.float32).copy()
    codes = np.empty((R.shape[0], E.shape[0]), dtype=np.int64)
    for level in range(E.shape[0]):
        codes[:, level] = assign_codes(
            R,
            E[level],
            codes[:, :level],
            balanced=constrained and q.balanced,
            unique=constrained and q.unique_last_level and level == E.shape[0] - 1,
            capacity_factor=q.capacity_factor,
        )
        R -= E[level][codes[:, level]]
    return codes


# -- RQ-VAE ---------------------------------------------------------------------------------------
@QUANTIZERS.register("rq-vae")
class RQVAE(Quantizer):
    """TIGER's residual-quantized variational auto-encoder (Rajput et al., 2023; Zeghidour et al.).

    encoder MLP D -> 512 -> 256 -> 128 -> latent (ReLU between layers), L residual levels of K
    codes of dimension ``latent_dim``, decoder the mirror MLP. With z the latent, r_1 = z,
    e_l = E_l[argmin_c ||r_l - E_l[c]||], r_{l+1} = r_l - e_l, z_q = sum_l e_l, the loss per item is

        ||x - dec(z + sg(z_q - z))||^2 + sum_l ( ||sg(r_l) - e_l||^2 + beta ||r_l - sg(e_l)||^2 )

    (the straight-through estimator passes the decoder's gradient to the encoder unchanged). Each
    level's codebook is k-means initialised on the first batch's residuals (at least K rows);
    after every epoch, codes no level-l residual chose during that epoch are re-initialised to
    random residuals of the epoch's last batch (dead-code reset). Adam on CPU or ``device``.

    Args:
        n_levels, codebook_size, latent_dim: L, K, latent width (TIGER: 3, 256, 32).
        hidden: encoder widths (the decoder mirrors them).
        beta: commitment weight (0.25).
        epochs, batch_size, lr, weight_decay: training; the defaults fit Beauty (12k items,
            256-d) in about 50 s on one CPU thread.
        dead_code_reset: re-initialise unused codes after each epoch.
        balanced, unique_last_level, capacity_factor: constraints on the codes that
            :meth:`encode` assigns (as in :class:`ResidualKMeans`; training assigns nearest codes).
        seed: torch seed for initialisation and shuffling (the global RNG is left untouched).
        device: torch device name.

    Fitted attributes: ``model_`` (the torch module, on CPU), ``loss_history_`` (per-epoch mean
    loss), ``dead_codes_reset_`` (codes re-initialised per epoch), ``n_features_in_``.
    """

    def __init__(
        self,
        n_levels: int = 3,
        codebook_size: int = 256,
        *,
        latent_dim: int = 32,
        hidden: tuple[int, ...] = (512, 256, 128),
        beta: float = 0.25,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        dead_code_reset: bool = True,
        balanced: bool = False,
        unique_last_level: bool = False,
        capacity_factor: float = 1.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.n_levels = n_levels
        self.codebook_size = codebook_size
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dead_code_reset = dead_code_reset
        self.balanced = balanced
        self.unique_last_level = unique_last_level
        self.capacity_factor = capacity_factor
        self.seed = seed
        self.device = device

    def _validate_params(self) -> None:
        _check_int(self, "n_levels", self.n_levels, 1, 8)
        _check_int(self, "codebook_size", self.codebook_size, 2, 1 << 16)
        _check_int(self, "latent_dim", self.latent_dim, 1)
        _check_int(self, "epochs", self.epochs, 0)
        _check_int(self, "batch_size", self.batch_size, 1)
        _check_int(self, "seed", self.seed, 0)
        _check_float(self, "beta", self.beta, 0.0)
        _check_float(self, "lr", self.lr, 0.0)
        _check_float(self, "weight_decay", self.weight_decay, 0.0)
        _check_float(self, "capacity_factor", self.capacity_factor, 1.0)
        for width in self.hidden:
            _check_int(self, "hidden", width, 1)

    def _build(self, d_in: int) -> Any:
        import torch
        from torch import nn

        def mlp(widths: list[int]) -> nn.Sequential:
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(itertools.pairwise(widths)):
                layers.append(nn.Linear(a, b))
                if i < len(widths) - 2:
                    layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        widths = [d_in, *self.hidden, self.latent_dim]
        model = nn.Module()
        model.encoder = mlp(widths)  # D -> ... -> latent
        model.decoder = mlp(widths[::-1])  # latent -> ... -> D
        model.codebooks = nn.Parameter(
            torch.randn(self.n_levels, self.codebook_size, self.latent_dim) * 0.1
        )  # (L, K, latent)
        return model

    def _quantize(self, z: Any) -> tuple[Any, Any, Any, list[Any]]:
        """z (B, latent) -> codes (B, L), z_q (B, latent), VQ loss (scalar), residuals per level."""
        import torch

        E = self.model_.codebooks  # (L, K, latent)
        r = z
        z_q = torch.zeros_like(z)
        loss = z.new_zeros(())
        codes, residuals = [], []
        for level in range(self.n_levels):
            rd = r.detach()
            d = (rd * rd).sum(1, keepdim=True) - 2 * rd @ E[level].T + (E[level] ** 2).sum(1)
            c = d.argmin(1)  # (B,)
            e = E[level][c]  # (B, latent)
            loss = (
                loss
                + ((rd - e) ** 2).sum(1).mean()
                + self.beta * ((r - e.detach()) ** 2).sum(1).mean()
            )
            z_q = z_q + e
            codes.append(c)
            residuals.append(rd)
            r = r - e.detach()
        return torch.stack(codes, 1), z_q, loss, residuals

    def fit(self, X: np.ndarray) -> RQVAE:
        import torch

        self._validate_params()
        X = self._check_X(X, "fit", fitting=True)
        n, K = X.shape[0], self.codebook_size
        if n < K:
            raise ValueError(f"RQVAE(codebook_size={K}) needs at least {K} rows to fit; got {n}.")
        self.n_features_in_ = X.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            self.model_ = self._build(X.shape[1]).to(self.device)
            data = torch.from_numpy(X).to(self.device)
            opt = torch.optim.Adam(
                self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
            # k-means initialisation of every level on the first batch's residuals
            first = torch.randperm(n, generator=gen)[: max(self.batch_size, K)]
            with torch.no_grad():
                r = self.model_.encoder(data[first])
                for level in range(self.n_levels):
                    C = _torch_kmeans_init(r, K, self.seed + level).to(self.device)
                    self.model_.codebooks[level] = C
                    r = r - C[torch.cdist(r, C).argmin(1)]
            self.loss_history_: list[float] = []
            self.dead_codes_reset_: list[int] = []
            for epoch in range(self.epochs):
                used = torch.zeros(self.n_levels, K, dtype=torch.bool, device=self.device)
                total, seen = 0.0, 0
                residuals: list[Any] = []
                for idx in _batches(n, self.batch_size, gen):
                    x = data[idx.to(self.device)]
                    z = self.model_.encoder(x)
                    codes, z_q, vq_loss, residuals = self._quantize(z)
                    x_hat = self.model_.decoder(z + (z_q - z).detach())  # straight-through
                    loss = ((x - x_hat) ** 2).sum(1).mean() + vq_loss
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    for level in range(self.n_levels):
                        used[level, codes[:, level]] = True
                    total += float(loss.detach()) * len(idx)
                    seen += len(idx)
                self.loss_history_.append(total / seen)
                reset = 0
                if self.dead_code_reset and epoch < self.epochs - 1:
                    reset = self._reset_dead_codes(used, residuals, opt, gen)
                self.dead_codes_reset_.append(reset)
                if epoch % 50 == 0 or epoch == self.epochs - 1:
                    log.info(
                        "RQVAE epoch %d: loss %.5f, %d dead codes reset",
                        epoch,
                        self.loss_history_[-1],
                        reset,
                    )
        self.model_.to("cpu").eval()
        return self

    def _reset_dead_codes(self, used: Any, residuals: list[Any], opt: Any, gen: Any) -> int:
        """Codes unused this epoch <- random residuals of the last batch (per level)."""
        import torch

        reset = 0
        with torch.no_grad():
            for level in range(self.n_levels):
                dead = torch.nonzero(~used[level]).flatten()
                if dead.numel() == 0:
                    continue
                r = residuals[level]  # (B, latent) residuals entering this level
                pick = torch.randint(0, r.shape[0], (dead.numel(),), generator=gen)
                self.model_.codebooks[level, dead] = r[pick.to(r.device)]
                state = opt.state.get(self.model_.codebooks, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][level, dead] = 0
                reset += int(dead.numel())
        return reset

    def encode(self, X: np.ndarray, *, constrained: bool = True) -> np.ndarray:
        """(N, L) int64 codes; ``constrained`` as in :meth:`ResidualKMeans.encode`."""
        import torch

        X = self._check_X(X, "encode")
        with torch.no_grad():
            r = self.model_.encoder(torch.from_numpy(X)).numpy()  # (N, latent)
            E = self.model_.codebooks.numpy()  # (L, K, latent)
        return _residual_codes(self, r, E, constrained)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        import torch

        self._check_fitted()
        codes = check_codes(codes, "RQVAE.decode", self.n_levels, self.codebook_size)
        with torch.no_grad():
            E = self.model_.codebooks  # (L, K, latent)
            z_q = sum(E[level][torch.from_numpy(codes[:, level])] for level in range(self.n_levels))
            return self.model_.decoder(z_q).numpy().astype(np.float32)


# -- Kelix-style parallel sub-codebooks ----------------------------------------------------------
@QUANTIZERS.register("parallel")
class ParallelSubCodebooks(Quantizer):
    """Parallel sub-codebooks with SimVQ codebooks, after Kelix's image tokenizer (OneRec Team, 2026).

    The embedding is mapped to L sub-vectors of ``code_dim`` dimensions (a learned linear
    ``encoder``, or with ``project=False`` the input itself cut into L equal slices), and each
    sub-vector is quantized by its own codebook: L parallel sub-codes, not a residual hierarchy,
    so L codes of K entries index K^L cells. The reconstruction is the sum over sub-codebooks of a
    linear map of each quantized sub-vector (with ``project=False``: the slices put back).

    Training lowers the reconstruction error, but the VQ terms of the loss can grow as the encoder
    rescales its output (they are not scale-invariant without ``normalize``); watch the
    reconstruction error, not ``loss_history_``.

    SimVQ codebooks (Zhu et al., 2024): book l is ``T_l @ W_l`` with T_l (K, table_dim) a frozen
    random Gaussian table and W_l (table_dim, code_dim) learned, so every gradient step moves all
    codes of a book together and none is left dead. k-means initialisation: W_l is solved by least
    squares so that T_l @ W_l equals the k-means centroids of the initial sub-vectors (exact when
    table_dim >= K, the default). The learned projection starts from PCA, with the principal
    components dealt round-robin to the books (component j -> book j mod L) so every book sees a
    similar share of the variance. Training: Adam on reconstruction + codebook + beta * commitment
    losses with the straight-through estimator, as in :class:`RQVAE`. With ``normalize=True`` both
    sub-vectors and codes are L2-normalised before matching (Kelix's option).

    These design choices (PCA start, round-robin split, least-squares init of W) are this
    project's: Kelix's code defines the SimVQ quantizer and the N-way split, not their use on items.

    Args:
        n_levels: L parallel sub-codebooks (Kelix's N).
        codebook_size: K codes per sub-codebook.
        code_dim: sub-vector width e; default D // L.
        project: learn a linear map D -> L * e (True) or cut the input into L slices (False).
        table_dim: width of the frozen random tables (default K).
        normalize: L2-normalise sub-vectors and codes before matching (Kelix's option; the
            sub-vector norms are then lost, so a linear decoder reconstructs less well).
        split: which principal components each book starts from: "contiguous" (book l takes
            components l*e .. (l+1)*e - 1, like product quantization after PCA) or "round-robin"
            (component j -> book j mod L, so books see similar variance; on text embeddings this
            makes the books cluster the same topics and collide more).
        balanced, unique_last_level, capacity_factor: constraints on the codes that
            :meth:`encode` assigns, as in :class:`ResidualKMeans` with the books in order
            (``unique_last_level`` keeps items with the same first L-1 sub-codes apart in the
            last book).
        beta, epochs, batch_size, lr, seed, device: training as in :class:`RQVAE`.

    Fitted attributes: ``model_``, ``loss_history_``, ``n_features_in_``, ``code_dim_``.
    """

    def __init__(
        self,
        n_levels: int = 3,
        codebook_size: int = 256,
        *,
        code_dim: int | None = None,
        project: bool = True,
        table_dim: int | None = None,
        normalize: bool = False,
        split: str = "contiguous",
        balanced: bool = False,
        unique_last_level: bool = False,
        capacity_factor: float = 1.0,
        beta: float = 0.25,
        epochs: int = 30,
        batch_size: int = 1024,
        lr: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.n_levels = n_levels
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.project = project
        self.table_dim = table_dim
        self.normalize = normalize
        self.split = split
        self.balanced = balanced
        self.unique_last_level = unique_last_level
        self.capacity_factor = capacity_factor
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device

    def _validate_params(self, d_in: int) -> None:
        _check_int(self, "n_levels", self.n_levels, 1, 64)
        _check_int(self, "codebook_size", self.codebook_size, 2, 1 << 16)
        if self.code_dim is not None:
            _check_int(self, "code_dim", self.code_dim, 1)
        if self.table_dim is not None:
            _check_int(self, "table_dim", self.table_dim, 1)
        _check_int(self, "epochs", self.epochs, 0)
        _check_int(self, "batch_size", self.batch_size, 1)
        _check_int(self, "seed", self.seed, 0)
        _check_float(self, "beta", self.beta, 0.0)
        _check_float(self, "lr", self.lr, 0.0)
        _check_float(self, "capacity_factor", self.capacity_factor, 1.0)
        if self.split not in ("contiguous", "round-robin"):
            raise ValueError(
                "The 'split' parameter of ParallelSubCodebooks must be a str among "
                f"{{'contiguous', 'round-robin'}}. Got {self.split!r} instead."
            )
        if not self.project:
            if d_in % self.n_levels:
                raise ValueError(
                    f"ParallelSubCodebooks(project=False) cuts the input into n_levels={self.n_levels} "
                    f"equal slices, but D={d_in} is not divisible by it; use project=True."
                )
            if self.code_dim is not None and self.code_dim != d_in // self.n_levels:
                raise ValueError(
                    f"ParallelSubCodebooks(project=False) has code_dim = D / n_levels = "
                    f"{d_in // self.n_levels}; got code_dim={self.code_dim}."
                )
        elif self.code_dim is not None and self.code_dim * self.n_levels > d_in:
            raise ValueError(
                f"ParallelSubCodebooks: n_levels * code_dim = {self.n_levels * self.code_dim} "
                f"exceeds the embedding width D={d_in}."
            )

    def _build(self, X: np.ndarray) -> Any:
        import torch
        from torch import nn

        d_in = X.shape[1]
        L, K, e = self.n_levels, self.codebook_size, self.code_dim_
        model = nn.Module()
        if self.project:
            # PCA start: principal components dealt round-robin to the books
            mean = X.mean(0)
            _, _, vt = np.linalg.svd(X - mean, full_matrices=False)  # (min(n, D), D)
            if self.split == "round-robin":  # component j -> book j mod L
                order = np.concatenate([np.arange(b, L * e, L) for b in range(L)])
            else:  # book l takes components l*e .. (l+1)*e - 1
                order = np.arange(L * e)
            basis = vt[order] if vt.shape[0] >= L * e else np.eye(d_in, dtype=np.float32)[order]
            model.encoder = nn.Linear(d_in, L * e)
            model.decoder = nn.Linear(L * e, d_in)  # = sum over books of Linear(e, D)
            with torch.no_grad():
                W = torch.from_numpy(np.ascontiguousarray(basis, dtype=np.float32))  # (L*e, D)
                model.encoder.weight.copy_(W)
                model.encoder.bias.copy_(-W @ torch.from_numpy(mean))
                model.decoder.weight.copy_(W.T)
                model.decoder.bias.copy_(torch.from_numpy(mean))
        else:
            model.encoder = nn.Identity()
            model.decoder = nn.Identity()
        gen = torch.Generator().manual_seed(self.seed)
        # (L, K, table_dim), frozen; scaled so table rows have about unit norm
        tables = torch.randn(L, K, self.table_dim_, generator=gen) / math.sqrt(self.table_dim_)
        model.register_buffer("tables", tables)
        model.proj = nn.Parameter(torch.zeros(L, self.table_dim_, e))  # (L, table_dim, e)
        return model

    def _subvectors(self, x: Any) -> Any:
        """x (B, D) -> (B, L, e) sub-vectors (normalised when ``normalize``)."""
        import torch.nn.functional as F

        z = self.model_.encoder(x).view(x.shape[0], self.n_levels, self.code_dim_)
        return F.normalize(z, dim=-1) if self.normalize else z

    def _codebooks(self) -> Any:
        """(L, K, e) codes of every book: frozen table @ learned projection."""
        import torch
        import torch.nn.functional as F

        books = torch.bmm(self.model_.tables, self.model_.proj)
        return F.normalize(books, dim=-1) if self.normalize else books

    def _quantize(self, z: Any) -> tuple[Any, Any, Any]:
        """z (B, L, e) -> codes (B, L), z_q (B, L, e), VQ loss."""
        import torch

        books = self._codebooks()  # (L, K, e)
        zd = z.detach().transpose(0, 1)  # (L, B, e)
        d = (
            (zd**2).sum(-1, keepdim=True)
            - 2 * torch.bmm(zd, books.transpose(1, 2))
            + (books**2).sum(-1)[:, None, :]
        )  # (L, B, K)
        codes = d.argmin(-1).T  # (B, L)
        z_q = torch.stack([books[level][codes[:, level]] for level in range(self.n_levels)], 1)
        loss = ((z.detach() - z_q) ** 2).sum(-1).mean() * self.n_levels
        loss = loss + self.beta * ((z - z_q.detach()) ** 2).sum(-1).mean() * self.n_levels
        return codes, z_q, loss

    def _reconstruct(self, z_q: Any) -> Any:
        return self.model_.decoder(z_q.reshape(z_q.shape[0], -1))

    def fit(self, X: np.ndarray) -> ParallelSubCodebooks:
        import torch

        X = self._check_X(X, "fit", fitting=True)
        self._validate_params(X.shape[1])
        n, K = X.shape[0], self.codebook_size
        if n < K:
            raise ValueError(
                f"ParallelSubCodebooks(codebook_size={K}) needs at least {K} rows to fit; got {n}."
            )
        self.code_dim_ = self.code_dim or X.shape[1] // self.n_levels
        self.table_dim_ = self.table_dim or K
        self.n_features_in_ = X.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            self.model_ = self._build(X).to(self.device)
            data = torch.from_numpy(X).to(self.device)
            with torch.no_grad():  # k-means initialisation of every book, then W by least squares
                z = self._subvectors(data)  # (N, L, e)
                for level in range(self.n_levels):
                    C = _torch_kmeans_init(z[:, level], K, self.seed + level).to(self.device)
                    if self.normalize:
                        C = torch.nn.functional.normalize(C, dim=-1)
                    T = self.model_.tables[level]  # (K, table_dim)
                    self.model_.proj[level] = torch.linalg.lstsq(T, C).solution
            opt = torch.optim.Adam(
                [p for p in self.model_.parameters() if p.requires_grad], lr=self.lr
            )
            self.loss_history_: list[float] = []
            for epoch in range(self.epochs):
                total = 0.0
                for idx in _batches(n, self.batch_size, gen):
                    x = data[idx.to(self.device)]
                    z = self._subvectors(x)
                    _, z_q, vq_loss = self._quantize(z)
                    x_hat = self._reconstruct(z + (z_q - z).detach())  # straight-through
                    loss = ((x - x_hat) ** 2).sum(1).mean() + vq_loss
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                self.loss_history_.append(total / n)
                if epoch % 10 == 0 or epoch == self.epochs - 1:
                    log.info("ParallelSubCodebooks epoch %d: loss %.5f", epoch, total / n)
        self.model_.to("cpu").eval()
        return self

    def encode(self, X: np.ndarray, *, constrained: bool = True) -> np.ndarray:
        """(N, L) int64 sub-codes; ``constrained`` as in :meth:`ResidualKMeans.encode`."""
        import torch

        X = self._check_X(X, "encode")
        with torch.no_grad():
            z = self._subvectors(torch.from_numpy(X)).numpy()  # (N, L, e)
            books = self._codebooks().numpy()  # (L, K, e)
        codes = np.empty((X.shape[0], self.n_levels), dtype=np.int64)
        for level in range(self.n_levels):
            codes[:, level] = assign_codes(
                np.ascontiguousarray(z[:, level]),
                books[level],
                codes[:, :level],
                balanced=constrained and self.balanced,
                unique=constrained and self.unique_last_level and level == self.n_levels - 1,
                capacity_factor=self.capacity_factor,
            )
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        import torch

        self._check_fitted()
        codes = check_codes(codes, "ParallelSubCodebooks.decode", self.n_levels, self.codebook_size)
        with torch.no_grad():
            books = self._codebooks()
            z_q = torch.stack(
                [books[level][torch.from_numpy(codes[:, level])] for level in range(self.n_levels)],
                1,
            )  # (N, L, e)
            return self._reconstruct(z_q).numpy().astype(np.float32)


# -- QARM's VQ code: nearest pool items ----------------------------------------------------------
@QUANTIZERS.register("nearest-items")
class NearestItemsCode(Quantizer):
    """QARM's VQ code: a pool of item embeddings is the codebook, and an item's code is the pool
    indices of its k nearest pool items (k = 25), by inner product on L2-normalised vectors (cosine)
    with exact faiss search. The code is a set of k ids ordered by similarity, not a hierarchy;
    ``pool_ids_[code]`` gives item ids. An item that is itself in the pool is not its own neighbour
    (pass its id to :meth:`encode`).

    Args:
        k: neighbours per item (``n_levels``).
        pool_size: pool items drawn at random (seeded) from the fitted rows; None = all of them.
        seed: seed of the pool draw.

    Fitted attributes: ``pool_`` (P, D) normalised pool embeddings, ``pool_ids_`` (P,) their item
    ids, ``index_`` (faiss), ``n_features_in_``. ``codebook_size`` is P once fitted.
    """

    def __init__(self, k: int = 25, *, pool_size: int | None = None, seed: int = 0) -> None:
        self.k = k
        self.pool_size = pool_size
        self.seed = seed

    @property
    def n_levels(self) -> int:  # type: ignore[override]
        return self.k

    @property
    def codebook_size(self) -> int:  # type: ignore[override]
        self._check_fitted()
        return int(self.pool_.shape[0])

    def fit(self, X: np.ndarray, ids: np.ndarray | None = None) -> NearestItemsCode:
        """Build the pool from the rows of X, whose item ids are ``ids`` (default 1..N)."""
        import faiss

        X = self._check_X(X, "fit", fitting=True)
        n = X.shape[0]
        ids = np.arange(1, n + 1) if ids is None else np.asarray(ids, dtype=np.int64)
        if ids.shape != (n,):
            raise ValueError(f"NearestItemsCode.fit: ids must have shape ({n},), got {ids.shape}.")
        if np.unique(ids).size != n:
            raise ValueError("NearestItemsCode.fit: ids must be unique.")
        if self.pool_size is not None:
            _check_int(self, "pool_size", self.pool_size, 2, n)
        pool_size = self.pool_size or n
        _check_int(self, "k", self.k, 1, pool_size - 1)
        _check_int(self, "seed", self.seed, 0)
        rows = np.arange(n)
        if pool_size < n:
            rows = np.sort(np.random.default_rng(self.seed).choice(n, pool_size, replace=False))
        self.pool_ = _normalize(X[rows])
        self.pool_ids_ = ids[rows]
        self.index_ = faiss.IndexFlatIP(X.shape[1])
        self.index_.add(self.pool_)
        self.n_features_in_ = X.shape[1]
        return self

    def encode(self, X: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """(N, k) pool indices of each row's k nearest pool items, most similar first.

        Args:
            ids: item ids of the rows of X; a pool item with the same id is skipped. Without ids no
                pool item is skipped (an item in the pool is then usually its own first neighbour).
        """
        X = self._check_X(X, "encode")
        n = X.shape[0]
        _, found = self.index_.search(_normalize(X), self.k + 1)  # (N, k+1)
        if ids is None:
            return found[:, : self.k].astype(np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (n,):
            raise ValueError(
                f"NearestItemsCode.encode: ids must have shape ({n},), got {ids.shape}."
            )
        is_self = self.pool_ids_[np.maximum(found, 0)] == ids[:, None]  # (N, k+1)
        # drop the row's own entry when found, else the (k+1)-th neighbour
        drop = np.where(is_self.any(1), is_self.argmax(1), self.k)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(n), drop] = False
        return found[keep].reshape(n, self.k).astype(np.int64)

    def fit_encode(self, X: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Pool = the rows of X (item ids ``ids``, default 1..N); each row's code skips itself."""
        row_ids = np.arange(1, len(X) + 1) if ids is None else np.asarray(ids, dtype=np.int64)
        return self.fit(X, row_ids).encode(X, ids=row_ids)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The mean of the k pool embeddings (normalised), a rough reconstruction of a unit vector."""
        self._check_fitted()
        codes = check_codes(codes, "NearestItemsCode.decode", self.k, self.codebook_size)
        return self.pool_[codes].mean(1)


def _normalize(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X / np.maximum(norms, 1e-12), dtype=np.float32)


def build_quantizer(name: str, **params: Any) -> Quantizer:
    """A registered quantizer by name: ``build_quantizer("rq-kmeans", balanced=True)``."""
    return QUANTIZERS.get(name)(**params)
