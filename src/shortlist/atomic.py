"""Atomic file writes: write a temporary file beside the target, then rename it over the target, so a
reader never sees a half-written file and a failed write leaves the old one (or none) in place.

Example:
    >>> with atomic_path(run_dir / "model.safetensors") as tmp:
    ...     save_file(state, tmp)
    >>> write_json(run_dir / "results.json", {"hr@10": 0.31})
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``, on error it is removed.

    ``suffix`` keeps writers that append an extension happy (``np.savez`` adds ``.npz`` otherwise).
    The file gets the usual permissions (0644 under the default umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """JSON with an indent and a final newline; non-JSON values (paths, dates) are written with str()."""
    return write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
