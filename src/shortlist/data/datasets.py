"""The dataset registry: named public datasets, where to find them, how to load and cache them.

A dataset's files are looked for, in order, in:
1. ``data_dir`` (``--data-dir`` on the CLI), either the dataset's own folder or a folder holding it;
2. ``$SHORTLIST_DATA``, likewise;
3. ``../shared/data`` relative to the working directory, when that folder exists (this project's
   development machines and CI);
4. the download cache (``$SHORTLIST_CACHE/raw/<name>``), filled from the official source on first
   use when ``download=True``.

Example:
    >>> from shortlist.data import load_dataset
    >>> data = load_dataset("ml-100k")            # validated, re-indexed, cached as Parquet
    >>> data.stats().interactions
    100000
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shortlist.data import cache
from shortlist.data.download import RemoteFile, cache_root, fetch
from shortlist.data.errors import DatasetNotFoundError
from shortlist.data.loaders.amazon import load_amazon_beauty, load_amazon_scientific
from shortlist.data.loaders.microlens import load_microlens
from shortlist.data.loaders.movielens import load_ml_1m, load_ml_100k, load_ml_latest_small
from shortlist.data.schema import InteractionData
from shortlist.registry import Registry

log = logging.getLogger(__name__)

# Bump when a loader's output changes, so cached entries are rebuilt.
LOADER_VERSION = "1"


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        loader: ``(folder, **params) -> InteractionData``; for generated datasets the folder is None.
        folders: folder names the dataset may have inside a data directory.
        markers: file sets that identify a usable copy; a folder qualifies when all files of any
            one set exist (several sets = several accepted layouts).
        remote: the official files to download, with published checksums where there are any.
    """

    name: str
    description: str
    loader: Callable[..., InteractionData]
    folders: tuple[str, ...] = ()
    markers: tuple[tuple[str, ...], ...] = ()
    remote: tuple[RemoteFile, ...] = ()
    homepage: str = ""
    license: str = ""
    notes: str = ""
    protocols: tuple[str, ...] = ()
    default_params: dict[str, Any] = field(default_factory=dict)

    @property
    def generated(self) -> bool:
        return not self.markers


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.add(spec.name, spec)


def list_datasets() -> list[DatasetSpec]:
    return [DATASETS.get(n) for n in DATASETS.names()]


def get_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


# -- locating files ----------------------------------------------------------------------------


def default_data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for local copies, in order (see the module docstring)."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("SHORTLIST_DATA")
    if env:
        dirs.append(Path(env).expanduser())
    shared = Path.cwd().parent / "shared" / "data"
    if shared.is_dir():
        dirs.append(shared)
    return dirs


def _qualifies(spec: DatasetSpec, folder: Path) -> bool:
    return folder.is_dir() and any(
        all((folder / f).exists() for f in marker) for marker in spec.markers
    )


def locate(spec: DatasetSpec, data_dir: str | Path | None = None) -> Path | None:
    """The first folder holding a usable local copy of ``spec``, or None."""
    candidates: list[Path] = []
    for base in default_data_dirs(data_dir):
        candidates.append(base)
        candidates.extend(base / f for f in (spec.name, *spec.folders))
    candidates.append(cache_root() / "raw" / spec.name)
    return next((c for c in candidates if _qualifies(spec, c)), None)


def _not_found(spec: DatasetSpec, data_dir: str | Path | None, why: str) -> DatasetNotFoundError:
    looked = [str(d) for d in default_data_dirs(data_dir)] + [str(cache_root() / "raw" / spec.name)]
    wanted = " or ".join("{" + ", ".join(m) + "}" for m in spec.markers)
    return DatasetNotFoundError(
        f"Dataset {spec.name!r} not found: {why}. Looked in {looked} (and their subfolders "
        f"{[spec.name, *spec.folders]}) for {wanted}. Pass --data-dir (or set SHORTLIST_DATA) to a "
        f"folder holding a copy{f', or download it from {spec.homepage}' if spec.homepage else ''}."
    )


def source_dir(name: str, data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Find (or download) the folder with ``name``'s source files."""
    spec = get_spec(name)
    if spec.generated:
        raise ValueError(f"Dataset {name!r} is generated, it has no source files.")
    found = locate(spec, data_dir)
    if found is not None:
        return found
    if not spec.remote:
        raise _not_found(spec, data_dir, "it has no public download URL")
    if not download:
        raise _not_found(spec, data_dir, "downloading is disabled")
    dest = cache_root() / "raw" / spec.name
    log.info("downloading %s into %s", spec.name, dest)
    fetch(list(spec.remote), dest)
    if not _qualifies(spec, dest):
        raise _not_found(spec, data_dir, f"the download into {dest} lacks the expected files")
    return dest


# -- loading with the cache ----------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    use_cache: bool = True,
    refresh: bool = False,
    **params: Any,
) -> InteractionData:
    """Load a registered dataset, validated and re-indexed, through the Parquet cache.

    Args:
        name: a registered name (``shortlist data list``).
        data_dir: a folder with a local copy (see the module docstring for the search order).
        cache_dir: where prepared datasets are cached (default ``$SHORTLIST_CACHE`` or
            ``~/.cache/shortlist``).
        download: fetch the official files when no local copy is found.
        use_cache: read/write the prepared cache (False always re-parses the sources).
        refresh: re-parse the sources and overwrite the cache entry.
        params: loader parameters (generated datasets: their configuration).
    """
    spec = get_spec(name)
    params = {**spec.default_params, **params}
    root = None if spec.generated else source_dir(name, data_dir, download=download)
    files = cache.source_files(root)
    key = cache.fingerprint(name, LOADER_VERSION, params, files, root)
    entry = cache.entry_dir(Path(cache_dir) if cache_dir else cache_root(), name, key)
    if use_cache and not refresh:
        cached = cache.read_prepared(entry)
        if cached is not None:
            log.info("loaded %s from cache %s", name, entry)
            return cached
    data = spec.loader(root, **params) if root is not None else spec.loader(**params)
    if use_cache:
        cache.write_prepared(
            data, entry, extra={"params": params, "source_dir": str(root) if root else None}
        )
        log.info("prepared %s into %s", name, entry)
    return data


# -- the registered datasets -------------------------------------------------------------------

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_ML_LICENSE = (
    "GroupLens research licence: research use, acknowledge, no redistribution without permission"
)

register_dataset(
    DatasetSpec(
        name="ml-100k",
        description="MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings with timestamps, demographics",
        loader=load_ml_100k,
        markers=(("u.data", "u.item", "u.user", "u.genre"),),
        remote=(
            RemoteFile(
                f"{_GROUPLENS}/ml-100k.zip",
                "ml-100k.zip",
                "sha256:50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                extract=True,
            ),
        ),
        homepage="https://grouplens.org/datasets/movielens/100k/",
        license=_ML_LICENSE,
        protocols=("hstu", "random", "temporal"),
    )
)
register_dataset(
    DatasetSpec(
        name="ml-1m",
        description="MovieLens 1M: 6,040 users, 3,706 rated movies, 1,000,209 ratings, demographics",
        loader=load_ml_1m,
        markers=(
            ("ratings.dat", "movies.dat", "users.dat"),
            (
                "movies.dat",
                "users.dat",
                "ratings_no_timestamp_Rpkg/ratings_user_movie_rating_origids.csv",
            ),
        ),
        remote=(
            RemoteFile(
                f"{_GROUPLENS}/ml-1m.zip",
                "ml-1m.zip",
                "sha256:a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                extract=True,
            ),
        ),
        homepage="https://grouplens.org/datasets/movielens/1m/",
        license=_ML_LICENSE,
        notes="The official ratings.dat has timestamps; the partial copy of this project has none for 67% of ratings.",
        protocols=("hstu", "random", "temporal"),
    )
)
register_dataset(
    DatasetSpec(
        name="ml-latest-small",
        description="MovieLens latest-small (2016): 671 users, 9,066 movies, 100,004 ratings, tags; long histories",
        loader=load_ml_latest_small,
        markers=(("ratings.csv", "movies.csv"),),
        remote=(
            # GroupLens replaced the 2016 release by a 2018 one (610 users, 100,836 ratings) at the same
            # URL and publishes no checksum for it, so none is pinned.
            RemoteFile(
                f"{_GROUPLENS}/ml-latest-small.zip", "ml-latest-small.zip", None, extract=True
            ),
        ),
        homepage="https://grouplens.org/datasets/movielens/latest/",
        license="GroupLens research licence; redistribution allowed under the same conditions (README.txt)",
        protocols=("hstu", "random", "temporal"),
    )
)
_SNAP = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
register_dataset(
    DatasetSpec(
        name="amazon-beauty",
        description="Amazon 2014 Beauty 5-core: 22,363 users, 12,101 items, 198,502 reviews; titles, categories",
        loader=load_amazon_beauty,
        folders=("amazon-beauty-5core",),
        markers=(
            ("user_sequence_asin.txt",),
            ("reviews_Beauty_5.json.gz",),
            ("reviews_Beauty_5.json",),
        ),
        remote=(
            # The publisher gives no checksums; the computed sha256 is recorded on first download.
            RemoteFile(f"{_SNAP}/reviews_Beauty_5.json.gz", "reviews_Beauty_5.json.gz", None),
            RemoteFile(f"{_SNAP}/meta_Beauty.json.gz", "meta_Beauty.json.gz", None),
        ),
        homepage="https://jmcauley.ucsd.edu/data/amazon/",
        license="Amazon review data, research use only; do not redistribute",
        protocols=("tiger", "hstu"),
    )
)
_LCREC = "https://raw.githubusercontent.com/Nishikata97/CollisionGenRec/505d5be3166f7c38ae67957daf8a3b7ec7092577/data/Scientific"
register_dataset(
    DatasetSpec(
        name="amazon-scientific",
        description="Amazon 2018 Industrial & Scientific (LC-Rec format): 8,317 users, 4,344 items, 58,492 events; rich text",
        loader=load_amazon_scientific,
        folders=("amazon-scientific-2018-lcrec",),
        markers=(("Scientific.inter.json", "Scientific.item.json"),),
        remote=(
            RemoteFile(
                f"{_LCREC}/Scientific.inter.json",
                "Scientific.inter.json",
                "sha256:32c6c01876ebecebdfabd2dbd358594be36655e9e7b168772a7a3aa3624ee1b4",
            ),
            RemoteFile(
                f"{_LCREC}/Scientific.item.json",
                "Scientific.item.json",
                "sha256:ad24200106868dac2b544d812305d61a11bf07fed78b2f7cdca41d66f3418e71",
            ),
        ),
        homepage="https://amazon-reviews-2023.github.io/ (2018 release: nijianmo.github.io/amazon)",
        license="Amazon review data, research use only; the processed files are MIT (CollisionGenRec)",
        protocols=("tiger",),
    )
)
register_dataset(
    DatasetSpec(
        name="microlens",
        description="MicroLens-50k short videos: item titles (19,220) and raw videos; interactions when present",
        loader=load_microlens,
        folders=("microlens-50k-partial", "MicroLens-50k"),
        markers=(("MicroLens-50k_titles.csv",),),
        homepage="https://github.com/westlake-repl/MicroLens",
        license="MicroLens terms: research use only",
        notes="The official files are hosted outside GitHub behind a form; no direct URL is pinned.",
    )
)


def _load_synthetic(**params: Any) -> InteractionData:
    from shortlist.data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(**params))


register_dataset(
    DatasetSpec(
        name="synthetic",
        description="Generated short-video log: latent interests, Zipf popularity, sessions, watch time, text",
        loader=_load_synthetic,
        protocols=("hstu", "tiger", "long", "random", "temporal"),
        notes="Parameters: any field of shortlist.data.synthetic.SyntheticConfig (--set n_users=...).",
    )
)
