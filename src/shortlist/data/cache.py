"""Prepared-dataset cache: Parquet files written atomically, keyed by a fingerprint of the sources.

Layout: ``<cache>/prepared/<name>/<fingerprint>/{interactions,items,users}.parquet + meta.json``.
The fingerprint hashes the loader version, the loader parameters and every source file's relative
path, size and modification time, so editing, adding or removing a source file invalidates the
entry. A new entry is built in a temporary sibling folder and renamed into place, so a crash never
leaves a half-written entry that a later run could read; older entries of the same dataset are
removed once the new one is in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from shortlist.data.schema import InteractionData

log = logging.getLogger(__name__)

_TABLES = ("interactions", "items", "users")
_META = "meta.json"


def source_files(root: Path | None) -> list[Path]:
    """Every regular file under ``root`` (a file itself, or a folder walked recursively), sorted."""
    if root is None:
        return []
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def fingerprint(
    name: str, version: str, params: dict[str, Any], files: list[Path], root: Path | None
) -> str:
    """A stable hash of what the prepared dataset depends on."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"name": name, "version": version, "params": params}, sort_keys=True, default=str
        ).encode()
    )
    for f in files:
        st = f.stat()
        rel = f.relative_to(root) if root is not None and root.is_dir() else Path(f.name)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def entry_dir(cache_dir: Path, name: str, key: str) -> Path:
    return Path(cache_dir) / "prepared" / name / key


def read_prepared(path: Path) -> InteractionData | None:
    """Load a prepared entry, or None if it is absent or incomplete."""
    meta_path = path / _META
    if not meta_path.is_file() or not all((path / f"{t}.parquet").is_file() for t in _TABLES):
        return None
    meta = json.loads(meta_path.read_text())
    frames = {t: pl.read_parquet(path / f"{t}.parquet") for t in _TABLES}
    return InteractionData(
        name=meta["name"], order=meta["order"], meta=meta.get("meta", {}), **frames
    )


def write_prepared(data: InteractionData, path: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling folder + rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        for table in _TABLES:
            getattr(data, table).write_parquet(tmp / f"{table}.parquet", compression="zstd")
        meta = {
            "name": data.name,
            "order": data.order,
            "meta": data.meta,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "counts": {
                "users": data.num_users,
                "items": data.num_items,
                "interactions": data.num_interactions,
            },
            **(extra or {}),
        }
        (tmp / _META).write_text(json.dumps(meta, indent=2, default=str))
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:
            # Another process (e.g. a second torchrun rank) put the same entry in place first: keep it.
            if read_prepared(path) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return path
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for sibling in path.parent.iterdir():
        if sibling != path and sibling.is_dir() and not sibling.name.startswith("."):
            shutil.rmtree(sibling, ignore_errors=True)
            log.debug("removed stale cache entry %s", sibling)
    return path
