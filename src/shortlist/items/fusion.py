"""Late fusion of per-modality item embeddings (text, image, video ...) into one embedding per item.

Notation: N rows (items), M modalities, D_m the size of modality m, D_cat = sum_m D_m, D the output
size, w_m the weight of modality m.

Each modality's rows are L2-normalised and scaled by w_m, the blocks are concatenated (N, D_cat),
optionally mapped to D dimensions by a fixed, seeded random orthogonal matrix, and the result is
L2-normalised again. Before the final normalisation the inner product of two fused rows is
``sum_m w_m**2 * cos_m``, so a weight w gives its modality a share proportional to w**2.

A row of NaN in a modality means "this item has no such content" (no image, no video): that block
is zero, so the item's fused row is built from the modalities it has. All-zero rows (padding)
stay zero.

Example:
    >>> fused = fuse({"text": text_emb, "image": image_emb}, {"text": 1.0, "image": 0.5})  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _bad(param: str, expected: str, got: object) -> ValueError:
    return ValueError(f"The {param!r} parameter of fuse must be {expected}. Got {got!r} instead.")


def orthogonal_projection(dim_in: int, dim_out: int, seed: int = 0) -> np.ndarray:
    """(dim_in, dim_out) float64 matrix with orthonormal columns (dim_out <= dim_in) or rows
    (dim_out > dim_in), from the QR decomposition of a seeded Gaussian matrix."""
    rng = np.random.default_rng(seed)
    tall = max(dim_in, dim_out), min(dim_in, dim_out)
    q, r = np.linalg.qr(rng.standard_normal(tall))  # (max, min), orthonormal columns
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # sign fix: the Haar measure, not QR's convention
    return q if dim_out <= dim_in else q.T


def real_matrix(value: object, label: str) -> np.ndarray:
    """``value`` as an (N, D) array of real numbers, D >= 1; else ValueError naming ``label``."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{label} must be an (N, D) array with D >= 1; got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{label} must hold real numbers; got dtype {arr.dtype}.")
    return arr


def fuse(
    embeddings: Mapping[str, np.ndarray],
    weights: Mapping[str, float] | None = None,
    dim: int | None = None,
    *,
    seed: int = 0,
) -> np.ndarray:
    """Fuse per-modality embeddings into one (N, D) float32 array of unit rows.

    Args:
        embeddings: modality name -> (N, D_m) array; a row of all NaN marks the item as lacking
            that modality. Every array must have the same N.
        weights: modality name -> w_m >= 0, one per modality (None: 1 for each).
        dim: None to concatenate (D = D_cat), or D >= 1 to project the concatenation with a fixed
            random orthogonal matrix drawn from ``seed``.
        seed: seed of the projection matrix (only used with ``dim``).

    Returns:
        (N, D) float32; rows are unit-norm, or zero where every present block is zero.

    Raises:
        ValueError: no modality, a non-2-D array or one whose N differs, a row with some but not
            all values NaN, infinite values, a modality that is NaN for every row, a row that is
            NaN in every modality, or bad weights / dim.
    """
    if not isinstance(embeddings, Mapping) or not embeddings:
        raise ValueError("fuse needs a non-empty mapping of modality name -> (N, D_m) array.")
    names = list(embeddings)
    arrays: dict[str, np.ndarray] = {}
    n_rows: int | None = None
    first = ""
    for name in names:
        arr = real_matrix(embeddings[name], f"fuse: modality {name!r}")
        if n_rows is None:
            n_rows, first = arr.shape[0], name
        elif arr.shape[0] != n_rows:
            raise ValueError(
                f"fuse: modality {name!r} has {arr.shape[0]} rows but {first!r} has {n_rows}; "
                "every modality needs one row per item."
            )
        arrays[name] = arr.astype(np.float64)
    assert n_rows is not None

    if weights is None:
        w = dict.fromkeys(names, 1.0)
    else:
        if not isinstance(weights, Mapping) or set(weights) != set(names):
            got = sorted(weights) if isinstance(weights, Mapping) else weights
            raise _bad("weights", f"None or one weight per modality {sorted(names)}", got)
        w = {}
        for name in names:
            value = weights[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.integer | np.floating)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"fuse: the weight of modality {name!r} must be a finite float >= 0; got {value!r}."
                )
            w[name] = float(value)
    if dim is not None and (
        isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1
    ):
        raise _bad("dim", "None or an int >= 1", dim)

    present = np.zeros(n_rows, dtype=bool)
    blocks = []
    for name in names:
        arr = arrays[name]
        nan = np.isnan(arr)
        absent = nan.all(axis=1)  # (N,)
        partial = nan.any(axis=1) & ~absent
        if partial.any():
            row = int(np.flatnonzero(partial)[0])
            raise ValueError(
                f"fuse: modality {name!r} row {row} is partly NaN ({int(nan[row].sum())} of "
                f"{arr.shape[1]} values); a row must be all NaN (modality absent) or all finite."
            )
        if np.isinf(arr).any():
            row = int(np.flatnonzero(np.isinf(arr).any(axis=1))[0])
            raise ValueError(f"fuse: modality {name!r} row {row} holds infinite values.")
        if n_rows and absent.all():
            raise ValueError(
                f"fuse: modality {name!r} is NaN for every row (absent for every item); drop it."
            )
        block = np.where(absent[:, None], 0.0, arr)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        blocks.append(w[name] * block / np.maximum(norms, 1e-12))  # (N, D_m)
        present |= ~absent
    if not present.all():
        rows = np.flatnonzero(~present)
        raise ValueError(
            f"fuse: {len(rows)} row(s) are NaN in every modality {names} (first: row {int(rows[0])}); "
            "each item needs at least one modality (use zeros for padding rows)."
        )
    fused = np.concatenate(blocks, axis=1)  # (N, D_cat)
    if dim is not None:
        fused = fused @ orthogonal_projection(fused.shape[1], int(dim), seed)  # (N, D)
    norms = np.linalg.norm(fused, axis=1, keepdims=True)
    return (fused / np.maximum(norms, 1e-12)).astype(np.float32)
