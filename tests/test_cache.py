"""The Parquet cache: reloads, invalidation on a changed source, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ML100K_RATINGS, write_ml100k
from shortlist.data import cache, datasets
from shortlist.data.datasets import load_dataset


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch):
    spec = datasets.get_spec("ml-100k")
    original = spec.loader
    calls: list[int] = []

    def counting(root: Path, **kw: object) -> object:
        calls.append(1)
        return original(root, **kw)

    object.__setattr__(spec, "loader", counting)
    yield calls
    object.__setattr__(spec, "loader", original)


def test_second_load_comes_from_cache(tmp_path: Path, counted: list[int]) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    first = load_dataset("ml-100k", data_dir=folder, download=False)
    second = load_dataset("ml-100k", data_dir=folder, download=False)
    assert len(counted) == 1
    assert second.interactions.equals(first.interactions) and second.items.equals(first.items)
    assert second.users.equals(first.users) and second.order == first.order
    assert second.items["genres"].to_list() == first.items["genres"].to_list()


def test_changed_source_invalidates(tmp_path: Path, counted: list[int]) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    assert load_dataset("ml-100k", data_dir=folder, download=False).num_interactions == 8
    write_ml100k(folder, [*ML100K_RATINGS, (3, 1, 2, 9)])
    assert load_dataset("ml-100k", data_dir=folder, download=False).num_interactions == 9
    assert len(counted) == 2
    entries = list((datasets.cache_root() / "prepared" / "ml-100k").iterdir())
    assert len(entries) == 1, "the stale entry is removed"


def test_refresh_reparses(tmp_path: Path, counted: list[int]) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    load_dataset("ml-100k", data_dir=folder, download=False)
    load_dataset("ml-100k", data_dir=folder, download=False, refresh=True)
    assert len(counted) == 2


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    data = load_dataset("ml-100k", data_dir=folder, download=False, use_cache=False)
    target = tmp_path / "c" / "prepared" / "ml-100k" / "abc"

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(data.users.__class__, "write_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.write_prepared(data, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    assert cache.read_prepared(target) is None


def test_incomplete_entry_is_ignored(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "interactions.parquet").write_bytes(b"")
    assert cache.read_prepared(entry) is None


def test_concurrent_writer_keeps_the_first_complete_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    data = load_dataset("ml-100k", data_dir=folder, download=False, use_cache=False)
    target = tmp_path / "c" / "prepared" / "ml-100k" / "key"
    cache.write_prepared(data, target)  # "the other rank" finished first
    real_replace = cache.os.replace

    raced = []

    def racing_replace(src: str, dst: str) -> None:
        if Path(dst) == target and not raced:
            raced.append(1)
            cache.write_prepared(
                data, target
            )  # the other rank re-creates the entry just before our rename
            raise OSError(39, "Directory not empty")
        real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", racing_replace)
    assert cache.write_prepared(data, target) == target
    monkeypatch.setattr(cache.os, "replace", real_replace)
    assert cache.read_prepared(target).interactions.equals(data.interactions)
    assert [p.name for p in target.parent.iterdir()] == ["key"]
