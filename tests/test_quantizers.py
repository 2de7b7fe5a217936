"""Tests of shortlist.items.quantizers: exact recovery of planted clusters (residual and parallel),
RQ-VAE training against a random codebook, balanced and unique-last-level assignment, the QARM
nearest-items code, parameter validation, unfitted use and bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.items.encoders import NotFittedError
from shortlist.items.quantizers import (
    QUANTIZERS,
    RQVAE,
    NearestItemsCode,
    ParallelSubCodebooks,
    ResidualKMeans,
    balanced_assign,
    build_quantizer,
    squared_distances,
)
from shortlist.items.semantic_ids import SemanticIds
from shortlist.registry import UnknownNameError


def hierarchical_clusters(
    per_leaf: int = 6, dim: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """4 x 4 x 4 nested clusters: x = 100 a_i + 10 b_j + c_k + noise, with random unit a, b, c.

    Returns X (64 * per_leaf, dim) and the true labels (N, 3) = (i, j, k)."""
    rng = np.random.default_rng(seed)

    def units() -> np.ndarray:
        v = rng.normal(size=(4, dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    a, b, c = units(), units(), units()
    labels = np.array([(i, j, k) for i in range(4) for j in range(4) for k in range(4)])
    labels = np.repeat(labels, per_leaf, axis=0)
    X = 100 * a[labels[:, 0]] + 10 * b[labels[:, 1]] + c[labels[:, 2]]
    X += 0.01 * rng.normal(size=X.shape)
    return X.astype(np.float32), labels


def subspace_clusters(n: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3 independent 4-d sub-spaces, each with 4 clusters (centres 10 apart), labels drawn
    independently per sub-space: X (n, 12), labels (n, 3)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 4, 4)) * 10  # (sub-space, cluster, 4)
    labels = rng.integers(0, 4, size=(n, 3))
    X = np.concatenate([centres[s][labels[:, s]] for s in range(3)], axis=1)
    X += 0.1 * rng.normal(size=X.shape)
    return X.astype(np.float32), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label vectors define the same partition (equal up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


SMALL = {
    "rq-kmeans": {"n_levels": 2, "codebook_size": 4},
    "rq-vae": {
        "n_levels": 2,
        "codebook_size": 4,
        "latent_dim": 4,
        "hidden": (16,),
        "epochs": 2,
        "batch_size": 32,
    },
    "parallel": {"n_levels": 2, "codebook_size": 4, "epochs": 2, "batch_size": 32},
    "nearest-items": {"k": 3},
}


def test_registry_names_every_quantizer() -> None:
    assert QUANTIZERS.names() == sorted(SMALL)
    with pytest.raises(UnknownNameError, match="Valid names: nearest-items, parallel, rq-kmeans"):
        build_quantizer("rq-means")


# -- validation ----------------------------------------------------------------------------------
def test_parameter_message_has_scikit_learn_form() -> None:
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ValueError) as err:
        ResidualKMeans(n_levels=0).fit(X)
    assert str(err.value) == (
        "The 'n_levels' parameter of ResidualKMeans must be an int in [1, 8]. Got 0 instead."
    )
    with pytest.raises(ValueError, match=r"'capacity_factor' parameter of ResidualKMeans"):
        ResidualKMeans(codebook_size=4, capacity_factor=0.5).fit(X)
    with pytest.raises(ValueError, match=r"'beta' parameter of RQVAE must be a float >= 0"):
        RQVAE(codebook_size=4, beta=-1.0).fit(X)
    with pytest.raises(ValueError, match=r"'split' parameter of ParallelSubCodebooks"):
        ParallelSubCodebooks(codebook_size=4, split="zigzag").fit(X)
    with pytest.raises(
        ValueError, match=r"'k' parameter of NearestItemsCode must be an int in \[1, 19\]"
    ):
        NearestItemsCode(k=20).fit(X)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unfitted_use_raises_a_clear_error(name: str) -> None:
    q = build_quantizer(name, **SMALL[name])
    X = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(NotFittedError, match=f"This {type(q).__name__} is not fitted yet"):
        q.encode(X)
    with pytest.raises(NotFittedError, match="call fit"):
        q.decode(np.zeros((3, q.n_levels), dtype=np.int64))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_nan_embeddings_are_refused_with_the_row(name: str) -> None:
    X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    bad = X.copy()
    bad[7, 3] = np.nan
    q = build_quantizer(name, **SMALL[name])
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 rows \(first bad row 7\)"):
        q.fit(bad)
    q.fit(X)
    bad[7, 3] = np.inf
    with pytest.raises(ValueError, match=r"first bad row 7"):
        q.encode(bad)
    with pytest.raises(ValueError, match="fitted with 8"):
        q.encode(X[:, :5])
    with pytest.raises(ValueError, match=r"2-d \(N, D\) array"):
        q.encode(X[0])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_round_trip_shapes_and_code_ranges(name: str) -> None:
    X, _ = hierarchical_clusters(per_leaf=1)
    q = build_quantizer(name, **SMALL[name]).fit(X)
    codes = q.encode(X)
    assert codes.shape == (len(X), q.n_levels) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < q.codebook_size
    X_hat = q.decode(codes)
    assert X_hat.shape == X.shape and X_hat.dtype == np.float32
    with pytest.raises(ValueError, match=r"codes must lie in \[0, "):
        q.decode(np.full((2, q.n_levels), q.codebook_size))
    with pytest.raises(ValueError, match="expects codes of shape"):
        q.decode(codes[:, :1] if q.n_levels > 1 else np.zeros((2, 2), dtype=np.int64))


# -- residual k-means ----------------------------------------------------------------------------
def test_residual_kmeans_recovers_nested_clusters_exactly() -> None:
    X, labels = hierarchical_clusters()
    rq = ResidualKMeans(n_levels=3, codebook_size=4, seed=1).fit(X)
    codes = rq.encode(X)
    np.testing.assert_array_equal(codes, rq.labels_)
    for level in range(3):
        assert same_partition(codes[:, level], labels[:, level]), f"level {level}"
    # the codes keep only the noise: 0.01^2 * 16 dims per row
    assert rq.reconstruction_error(X) < 0.01
    assert rq.inertia_[0] > rq.inertia_[1] > rq.inertia_[2]
    m = SemanticIds.from_codes(codes, codebook_size=4).metrics(rq, X)
    assert m.utilisation == (1.0, 1.0, 1.0)
    assert m.n_unique_codes == 64 and m.max_items_per_code == 6


def test_residual_kmeans_is_deterministic() -> None:
    X, _ = hierarchical_clusters(per_leaf=2, seed=3)
    a = ResidualKMeans(3, 8, seed=5).fit(X)
    b = ResidualKMeans(3, 8, seed=5).fit(X)
    np.testing.assert_array_equal(a.codebooks_, b.codebooks_)
    np.testing.assert_array_equal(a.encode(X), b.encode(X))


def skewed_duplicates(n: int = 1000, seed: int = 0) -> np.ndarray:
    """n points on only 10 distinct, well-separated locations with Zipf-like frequencies."""
    rng = np.random.default_rng(seed)
    locations = rng.normal(size=(10, 8)).astype(np.float32) * 10
    p = 1 / np.arange(1, 11)
    return locations[rng.choice(10, size=n, p=p / p.sum())]


def test_balanced_assignment_raises_utilisation_on_skewed_data() -> None:
    X = skewed_duplicates()
    K = 16
    plain = ResidualKMeans(1, K).fit(X)
    balanced = ResidualKMeans(1, K, balanced=True).fit(X)
    # 10 distinct points can use at most 10 of 16 codes when each goes to its nearest centroid
    assert np.unique(plain.labels_).size <= 10
    counts = np.bincount(balanced.labels_[:, 0], minlength=K)
    assert (counts > 0).all()  # every code used
    assert counts.max() <= -(-len(X) // K)  # capacity ceil(N/K) = 63
    np.testing.assert_array_equal(balanced.encode(X), balanced.labels_)
    # plain nearest-centroid codes stay available
    assert np.unique(balanced.encode(X, constrained=False)).size <= 10


def test_unique_last_level_separates_items_with_a_shared_prefix() -> None:
    X = skewed_duplicates(n=300)
    plain = ResidualKMeans(2, 16).fit(X)
    unique = ResidualKMeans(2, 16, unique_last_level=True).fit(X)
    # the most common location holds ~100 identical points: they collide without the constraint
    assert SemanticIds.from_codes(plain.labels_, codebook_size=16).metrics().collision_rate > 0.9
    m = SemanticIds.from_codes(unique.labels_, codebook_size=16).metrics()
    # buckets of <= 16 items are fully separated; larger ones share ceil(bucket / 16) per code
    _, bucket_sizes = np.unique(unique.labels_[:, 0], return_counts=True)
    assert m.max_items_per_code == max(1, -(-bucket_sizes.max() // 16))
    assert m.collision_rate < SemanticIds.from_codes(plain.labels_).metrics().collision_rate


def test_residual_kmeans_needs_as_many_rows_as_codes() -> None:
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="needs at least 16 rows to fit; got 10"):
        ResidualKMeans(2, 16).fit(X)


# -- balanced_assign -----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 8), slack=st.integers(0, 3), seed=st.integers(0, 999))
def test_balanced_assign_is_a_stable_matching_within_capacity(
    n: int, k: int, slack: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    dist = rng.random((n, k))
    capacity = -(-n // k) + slack
    lab = balanced_assign(dist, capacity)
    counts = np.bincount(lab, minlength=k)
    assert lab.min() >= 0 and counts.max() <= capacity
    # stability: no point prefers a centroid that has room, or that holds a farther point
    worst = np.full(k, -np.inf)
    np.maximum.at(worst, lab, dist[np.arange(n), lab])
    for i in range(n):
        better = dist[i] < dist[i, lab[i]]
        blocking = better & ((counts < capacity) | (dist[i] < worst))
        assert not blocking.any(), (i, lab[i], np.flatnonzero(blocking))
    if capacity >= n:  # no constraint binds: plain argmin
        np.testing.assert_array_equal(lab, dist.argmin(1))


def test_balanced_assign_with_groups_and_bad_capacity() -> None:
    dist = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    # two groups of two, capacity 1 per (group, centroid): each group splits over both centroids
    lab = balanced_assign(dist, 1, groups=np.array([0, 0, 1, 1]))
    np.testing.assert_array_equal(lab, [0, 1, 0, 1])  # ties go to the lower index
    with pytest.raises(ValueError, match="cannot hold the 4 points"):
        balanced_assign(dist, 1)


def test_squared_distances_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    X, C = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    brute = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(X, C), brute, atol=1e-9)


# -- RQ-VAE --------------------------------------------------------------------------------------
def rqvae(**overrides: object) -> RQVAE:
    params = {
        "n_levels": 2,
        "codebook_size": 8,
        "latent_dim": 8,
        "hidden": (32, 16),
        "epochs": 40,
        "batch_size": 64,
        "lr": 3e-3,
        "seed": 0,
    }
    params.update(overrides)
    return RQVAE(**params)  # type: ignore[arg-type]


def test_rqvae_beats_a_random_codebook_and_learns() -> None:
    X, _ = hierarchical_clusters(per_leaf=4)
    X = X / 100  # unit-scale inputs
    q = rqvae().fit(X)
    assert q.loss_history_[-1] < 0.5 * q.loss_history_[0]
    err = q.reconstruction_error(X)
    variance = float(((X - X.mean(0)) ** 2).sum(1).mean())
    assert err < 0.1 * variance
    # the same network with random codebooks of the learned scale reconstructs far worse
    import torch

    trained = q.model_.codebooks.detach().clone()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        q.model_.codebooks.copy_(torch.randn(trained.shape, generator=gen) * trained.std())
    assert q.reconstruction_error(X) > 5 * err
    with torch.no_grad():
        q.model_.codebooks.copy_(trained)
    assert q.reconstruction_error(X) == pytest.approx(err)


def test_rqvae_is_deterministic_and_keeps_the_global_rng() -> None:
    import torch

    X, _ = hierarchical_clusters(per_leaf=2, seed=2)
    X = X / 100
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = rqvae(epochs=5).fit(X)
    after = torch.rand(3)
    torch.testing.assert_close(before, after)  # fit used its own generator
    b = rqvae(epochs=5).fit(X)
    np.testing.assert_array_equal(a.encode(X), b.encode(X))
    assert a.loss_history_ == b.loss_history_


def test_rqvae_resets_dead_codes() -> None:
    # 4 distinct points, 8 codes per level: some codes cannot be used in an epoch and are reset
    X = np.repeat(np.eye(4, 6, dtype=np.float32), 16, axis=0)
    q = rqvae(epochs=3, batch_size=16).fit(X)
    assert q.dead_codes_reset_[0] > 0
    assert q.dead_codes_reset_[-1] == 0  # no reset after the last epoch
    no_reset = rqvae(epochs=3, batch_size=16, dead_code_reset=False).fit(X)
    assert no_reset.dead_codes_reset_ == [0, 0, 0]


# -- parallel sub-codebooks ----------------------------------------------------------------------
def test_parallel_sub_codebooks_recover_independent_subspace_clusters() -> None:
    X, labels = subspace_clusters()
    q = ParallelSubCodebooks(n_levels=3, codebook_size=4, project=False, epochs=5).fit(X)
    codes = q.encode(X)
    for book in range(3):
        assert same_partition(codes[:, book], labels[:, book]), f"book {book}"
    # 64 cells, so (almost) every combination of sub-codes occurs: the codes are not residual
    assert np.unique(codes, axis=0).shape[0] == np.unique(labels, axis=0).shape[0]
    assert q.reconstruction_error(X) < 0.01 * 12 * 2  # ~ noise variance 0.1^2 per dim
    # the SimVQ table is frozen; only the projection (and encoder/decoder) learn
    assert not q.model_.tables.requires_grad and q.model_.proj.requires_grad


def test_parallel_with_projection_reconstructs_and_validates() -> None:
    X, _ = subspace_clusters(seed=1)
    q = ParallelSubCodebooks(n_levels=2, codebook_size=8, code_dim=4, epochs=20).fit(X)
    variance = float(((X - X.mean(0)) ** 2).sum(1).mean())
    assert q.reconstruction_error(X) < 0.5 * variance
    assert q.encode(X).shape == (len(X), 2)
    normalized = ParallelSubCodebooks(2, 8, code_dim=4, epochs=2, normalize=True).fit(X)
    assert np.isfinite(normalized.decode(normalized.encode(X))).all()
    with pytest.raises(ValueError, match="not divisible"):
        ParallelSubCodebooks(n_levels=5, codebook_size=4, project=False).fit(X)
    with pytest.raises(ValueError, match="exceeds the embedding width D=12"):
        ParallelSubCodebooks(n_levels=3, codebook_size=4, code_dim=5).fit(X)


def test_parallel_unique_last_level_removes_collisions() -> None:
    X, _ = subspace_clusters(n=100)
    X = np.concatenate([X, X[:20]])[:, :8]  # 20 exact duplicates; 2 books of 4 dims
    q = ParallelSubCodebooks(2, 32, project=False, epochs=0, unique_last_level=True).fit(X)
    codes = q.encode(X)
    assert np.bincount(codes[:, 0]).max() <= 32  # every first-book bucket fits in the last book
    assert SemanticIds.from_codes(codes, codebook_size=32).metrics().collision_rate == 0.0
    plain = q.encode(X, constrained=False)
    assert SemanticIds.from_codes(plain, codebook_size=32).metrics().collision_rate >= 40 / 120


# -- QARM's nearest-items code -------------------------------------------------------------------
def test_nearest_items_code_excludes_self_and_returns_k_ids() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    X[10] = X[11]  # a duplicate: self may not be ranked first
    ids = np.arange(1, 61)
    q = NearestItemsCode(k=5).fit(X)
    codes = q.encode(X, ids=ids)
    assert codes.shape == (60, 5)
    neighbours = q.pool_ids_[codes]
    assert not (neighbours == ids[:, None]).any()
    assert all(len(set(row)) == 5 for row in neighbours.tolist())
    # brute force: cosine similarity, self excluded
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = Xn @ Xn.T
    np.fill_diagonal(sim, -np.inf)
    for i in range(60):
        expected = set(np.argsort(-sim[i])[:5] + 1)
        if i not in (10, 11):
            assert set(neighbours[i]) == expected
    assert 12 in neighbours[10] and 11 in neighbours[11]  # the twin, not itself
    # without ids the item is its own nearest neighbour
    assert (q.encode(X)[:, 0] == np.arange(60))[[i for i in range(60) if i not in (10, 11)]].all()
    decoded = q.decode(codes)
    assert decoded.shape == (60, 8)
    np.testing.assert_array_equal(NearestItemsCode(k=5).fit_encode(X), codes)


def test_nearest_items_code_with_a_pool_subset() -> None:
    X = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    q = NearestItemsCode(k=3, pool_size=20, seed=0).fit(X, ids=np.arange(101, 151))
    assert q.codebook_size == 20 and q.n_levels == 3
    assert set(q.pool_ids_.tolist()) <= set(range(101, 151))
    codes = q.encode(X, ids=np.arange(101, 151))
    assert codes.shape == (50, 3) and codes.max() < 20
    assert not (q.pool_ids_[codes] == np.arange(101, 151)[:, None]).any()
    with pytest.raises(ValueError, match=re.escape("ids must have shape (50,)")):
        q.encode(X, ids=np.arange(3))
    with pytest.raises(ValueError, match="ids must be unique"):
        NearestItemsCode(k=3).fit(X, ids=np.zeros(50))
