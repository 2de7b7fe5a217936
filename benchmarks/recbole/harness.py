"""What the RecBole harnesses (``run_sasrec.py``, ``run_ctr.py``) share: running RecBole 1.2.1 from its
own environment without tensorboard and on numpy 2, and naming the machine.

Imported by the scripts of this folder (their folder is on ``sys.path`` when they run), never by
the project.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch


def install_no_op_tensorboard() -> None:
    """Make ``torch.utils.tensorboard`` a no-op writer before RecBole imports it.

    recbole/utils/utils.py imports ``SummaryWriter`` at import time and every Trainer opens one under
    ./log_tensorboard; the harness records its results in JSON, so it neither needs the tensorboard
    package (a dozen wheels) nor the event files. Always installed, whether tensorboard exists or not.
    """

    class SummaryWriter:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = SummaryWriter  # type: ignore[attr-defined]
    sys.modules["torch.utils.tensorboard"] = module


# numpy 1.x names that RecBole 1.2.1 reads (Config.compatibility_settings: np.float = np.float_,
# np.complex = np.complex_, np.unicode = np.unicode_) and numpy 2 removed.
NUMPY_1_ALIASES = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}


def install_numpy_1_aliases() -> list[str]:
    """On numpy >= 2, define the numpy 1.x aliases RecBole 1.2.1 reads; return the names added.

    RecBole's only numpy-2 break on the code paths used here is that alias block (checked by grep for
    every alias numpy 2 removed, and by identical metrics under numpy 1.26.4 and 2.x: README.md).
    The CPU environment pins numpy 1.26.4 and adds nothing; the GPU image keeps its numpy 2, which
    its scipy and scikit-learn need.
    """
    added = [name for name in NUMPY_1_ALIASES if not hasattr(np, name)]
    for name in added:
        setattr(np, name, NUMPY_1_ALIASES[name])
    return added


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f"{torch.cuda.get_device_name(0)} / " if device.type == "cuda" else ""
    return f"{gpu}{cores}-core {cpu}, torch {torch.__version__}, Python {platform.python_version()}"


def command_line() -> str:
    """This process's command line, the script path relative to the repository root."""
    root = Path(__file__).resolve().parents[2]
    return " ".join(
        ["python", *map(shlex.quote, [os.path.relpath(sys.argv[0], root), *sys.argv[1:]])]
    )


def recbole_config(
    model: str, token: str, config_dict: dict[str, Any], work_dir: Path, use_gpu: bool
) -> Any:
    """RecBole's ``Config`` for ``model`` on the exported dataset ``token``, quiet and file-free.

    Adds the harness's environment keys (no progress bars, no wandb, checkpoints under
    ``work_dir/saved``; ``config_dict`` may override them), changes into ``work_dir`` (RecBole writes
    ``./log/`` relative to it) and hides this script's arguments from RecBole, whose ``Config`` would
    read ``--key=value`` pairs from ``sys.argv``.
    """
    from recbole.config import Config

    env = {
        "use_gpu": use_gpu,
        "gpu_id": "0",
        "show_progress": False,
        "log_wandb": False,
        "checkpoint_dir": str((work_dir / "saved").resolve()),
        "state": "INFO",
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(work_dir)
    argv_saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        return Config(model=model, dataset=token, config_dict={**env, **config_dict})
    finally:
        sys.argv = argv_saved


def rng_state() -> dict[str, Any]:
    """The random states a resumed run restores: Python's, numpy's, torch's CPU and CUDA generators."""
    import random

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only where this machine has as many GPUs)."""
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if (
        state["cuda"]
        and torch.cuda.is_available()
        and len(state["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a resumable training state atomically: ``torch.save`` to a temporary file, then rename.

    A run killed while writing leaves the previous checkpoint intact. ``state["run"]`` identifies
    the run (data, model, seed...): :func:`load_checkpoint` refuses a checkpoint of another run.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The state :func:`save_checkpoint` wrote at ``path``, or None when there is none.

    Raises ValueError naming the differing keys when the checkpoint belongs to another run (its
    ``run`` differs from ``run``): resuming it would mix two experiments.
    """
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved = state.get("run", {})
    differ = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
    if differ:
        detail = ", ".join(
            f"{k}: checkpoint {saved.get(k)!r} vs now {run.get(k)!r}" for k in differ
        )
        raise ValueError(
            f"The checkpoint {path} belongs to another run ({detail}). "
            "Pass another '--checkpoint' path or delete this one to start afresh."
        )
    return state
