"""Shared fixtures: an isolated cache, the real-data folder (skipped when absent), tiny fixtures in
the official file formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def real_data_root() -> Path | None:
    env = os.environ.get("SHORTLIST_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return shared if shared.is_dir() else None


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own cache folder, so nothing touches ~/.cache or leaks between tests."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SHORTLIST_CACHE", str(cache))
    return cache


@pytest.fixture
def data_root() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("real datasets not found: set SHORTLIST_DATA or place them in ../shared/data")
    return root


def dataset_dir(root: Path, *names: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    pytest.skip(f"dataset folder {names[0]!r} not found under {root}")


ML100K_GENRES = "unknown|0\nAction|1\nComedy|2\n"


def write_ml100k(
    folder: Path, ratings: list[tuple[int, int, int, int]], n_users: int = 3, n_items: int = 4
) -> Path:
    """A tiny ml-100k copy in the official formats (3 genres instead of 19)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u}|M|writer|0000{u}\n" for u in range(1, n_users + 1))
    )
    (folder / "u.item").write_bytes(
        "".join(
            f"{i}|Movie {i} (199{i})|01-Jan-199{i}||http://x/{i}|0|{i % 2}|{(i + 1) % 2}\n"
            for i in range(1, n_items + 1)
        ).encode("latin-1")
    )
    (folder / "u.genre").write_text(ML100K_GENRES)
    return folder


ML100K_RATINGS = [
    (1, 1, 5, 100),
    (1, 2, 3, 50),
    (1, 3, 4, 200),
    (2, 2, 2, 10),
    (2, 4, 1, 20),
    (2, 1, 5, 30),
    (2, 3, 4, 40),
    (3, 4, 3, 5),
]


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    return write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)


def write_ml1m_official(folder: Path) -> Path:
    """A tiny ml-1m copy in the official '::' formats, with a latin-1 title."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n3::Amélie (2001)::Comedy|Romance\n".encode(
            "latin-1"
        )
    )
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n".replace("1193", "3")
        + "1::1::3::978302109\n1::2::4::978301968\n2::3::5::978298709\n2::1::2::978299000\n"
    )
    return folder
