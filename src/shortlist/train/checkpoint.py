"""Training checkpoints: everything needed to resume a run bit-for-bit, written atomically.

A checkpoint holds the model and optimizer/scheduler states, the epoch and step reached, the
early-stopping state, the metric history and every random number generator state (Python, NumPy,
torch CPU and CUDA), so a run killed after epoch e and resumed gives the same weights as a run that
was never interrupted (on CPU; CUDA kernels are not all deterministic).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shortlist.atomic import atomic_path

LAST = "last.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """``torch.save`` into a temporary file in the same folder, then rename over ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # weights_only=False: the checkpoint holds RNG states (NumPy arrays, tuples) written by us.
    return torch.load(path, map_location=map_location, weights_only=False)
