"""Argument checks shared by the data modules.

One message form for bad parameters, as in scikit-learn: "The 'max_len' parameter of pad must be
a positive int. Got 0 instead."
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _bad(param: str, owner: str, expected: str, got: object) -> ValueError:
    """The error for a bad parameter, in the one message form above."""
    return ValueError(
        f"The {param!r} parameter of {owner} must be {expected}. Got {got!r} instead."
    )


def _is_int(x: object) -> bool:
    """An int or NumPy integer, not a bool."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _is_real(x: object) -> bool:
    """A finite int or float (NumPy scalars too), not a bool."""
    return (
        isinstance(x, int | float | np.integer | np.floating)
        and not isinstance(x, bool)
        and bool(np.isfinite(x))
    )


def _check_int(value: Any, name: str, owner: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(
            f"The {name!r} parameter of {owner} must be {kind}. Got {value!r} instead."
        )
    return int(value)


def _check_choice(value: Any, name: str, owner: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be one of {choices}. Got {value!r} instead."
        )


def _as_rows(rows: np.ndarray | list[int], n: int, owner: str) -> np.ndarray:
    """Row indices as int64, from an int array or a boolean mask of length ``n``."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(
                f"{owner}: a boolean row mask must have shape ({n},), got {rows.shape}."
            )
        return np.flatnonzero(rows)
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"{owner}: rows must be a 1-D int array, got {rows.dtype} {rows.shape}.")
    lo, hi = int(rows.min()), int(rows.max())
    if lo < -n or hi >= n:
        raise IndexError(f"{owner}: row {lo if lo < -n else hi} is out of range for {n} rows.")
    rows = rows.astype(np.int64, copy=False)
    return np.where(rows < 0, rows + n, rows) if lo < 0 else rows
