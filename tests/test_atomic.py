"""Atomic writes: the target is replaced whole or not at all, with ordinary permissions."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from shortlist.atomic import atomic_path, write_json


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_permissions_and_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.npz", suffix=".npz") as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    mode = stat.S_IMODE((tmp_path / "a.npz").stat().st_mode)
    # readable by group and others (umask 022), not mkstemp's 0600
    assert mode & 0o044 == 0o044, oct(mode)
