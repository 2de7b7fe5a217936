"""Download public datasets into a cache directory on first use, safely.

:func:`fetch` takes the list of :class:`RemoteFile` a dataset is made of and a destination folder, and
either returns the folder at once (it is already complete) or builds it from the network:

1. Everything is built in a sibling folder ``<dest>.partial-<random>`` (same file system as ``dest``):
   each file is streamed with :mod:`urllib` into a temporary file there, hashed while it is written,
   and checked against its published checksum (or, when the publisher gives none, its sha256 is
   recorded in ``CHECKSUMS.sha256``).
2. Archives (zip, tar, tar.gz/bz2/xz, single-file .gz) are extracted into a temporary folder inside the
   partial folder, with every member path checked first (no absolute paths, no ``..``, no links in
   tar files); an archive whose content sits in one top-level folder (``ml-100k/`` inside
   ``ml-100k.zip``) is flattened so that its files land directly in ``dest``.
3. A ``.complete`` file listing every file is written, and the partial folder is renamed to ``dest``
   with :func:`os.replace`, so ``dest`` appears whole or not at all. On any error (network, checksum,
   a bad archive, Ctrl-C) the partial folder is deleted: nothing half-written is left in the cache.

Only a process killed outright (SIGKILL, power loss) can leave a ``<dest>.partial-*`` folder behind;
it is never mistaken for a dataset and can be deleted by hand.

Example::

    files = [
        RemoteFile(
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            filename="ml-100k.zip",
            checksum="md5:0e33842e24a9c977be4e0107933c0723",
            extract=True,
        )
    ]
    folder = fetch(files, cache_root() / "ml-100k")  # folder / "u.data" etc.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import re
import secrets
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from shortlist.data.errors import ChecksumError, DatasetNotFoundError, DataValidationError

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
"""Name of the file, written last, that marks a cache folder as complete and lists its files."""
CHECKSUMS_FILE = "CHECKSUMS.sha256"
"""Name of the file (``sha256sum`` format) holding the sha256 of files published without checksum."""

CHUNK_SIZE = 1 << 20  # bytes read from the network (and hashed) at a time
LOG_EVERY_S = 10.0  # without a progress bar, log the running byte count at most this often
HINT = "download it by hand and pass --data-dir / set SHORTLIST_DATA to the folder that contains it"
USER_AGENT = "shortlist (python urllib)"

ArchiveKind = Literal["zip", "tar", "gz"]
_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
_SCHEMES = ("http", "https", "ftp", "file")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_RESERVED = (COMPLETE_MARKER, CHECKSUMS_FILE)
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def archive_kind(filename: str) -> ArchiveKind | None:
    """The archive format implied by a file name's suffix, or None when it is not an archive."""
    lower = filename.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    if lower.endswith(".gz"):
        return "gz"
    return None


@dataclass(frozen=True)
class RemoteFile:
    """One file of a public dataset, as its publisher serves it.

    Args:
        url: where to download it from (http, https, ftp or file).
        filename: a plain file name (no folders) the download is stored under.
        checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"`` (sha1 and sha512 are accepted too), or None
            when the publisher gives no checksum; then the computed sha256 is recorded instead.
        extract: unpack the file (zip, tar, tar.gz/bz2/xz, or a single-file .gz) instead of keeping it.
        size: the expected size in bytes, if known; used for the progress bar when the server sends
            no Content-Length, and checked after the download.
    """

    url: str
    filename: str
    checksum: str | None
    extract: bool = False
    size: int | None = None

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.url).scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"The 'url' parameter of RemoteFile must use one of the schemes {_SCHEMES}. "
                f"Got {self.url!r} instead."
            )
        name = self.filename
        if not name or name in (".", "..") or "/" in name or "\\" in name or name in _RESERVED:
            raise ValueError(
                "The 'filename' parameter of RemoteFile must be a plain file name (no folders, not "
                f"{' or '.join(_RESERVED)}). Got {name!r} instead."
            )
        if self.checksum is not None:
            algorithm, _, digest = self.checksum.partition(":")
            size = hashlib.new(algorithm).digest_size if algorithm in _ALGORITHMS else 0
            if not size or not re.fullmatch(f"[0-9a-fA-F]{{{2 * size}}}", digest):
                raise ValueError(
                    "The 'checksum' parameter of RemoteFile must be None or '<algorithm>:<hex "
                    f"digest>' with an algorithm in {_ALGORITHMS} (e.g. 'sha256:' and 64 hex "
                    f"digits). Got {self.checksum!r} instead."
                )
        if self.extract and (archive_kind(name) is None or name.lower() == ".gz"):
            raise ValueError(
                "RemoteFile(extract=True) needs a file name ending in .zip, "
                f"{', '.join(_TAR_SUFFIXES)} or .gz. Got {name!r} instead."
            )
        if self.size is not None and self.size < 0:
            raise ValueError(
                "The 'size' parameter of RemoteFile must be None or an int >= 0. "
                f"Got {self.size!r} instead."
            )

    @property
    def algorithm(self) -> str | None:
        """The hash algorithm of ``checksum`` (``"md5"``, ``"sha256"`` ...), or None."""
        return None if self.checksum is None else self.checksum.partition(":")[0]

    @property
    def digest(self) -> str | None:
        """The expected hex digest of ``checksum`` in lower case, or None."""
        return None if self.checksum is None else self.checksum.partition(":")[2].lower()


def cache_root() -> Path:
    """The folder downloads are cached in: ``$SHORTLIST_CACHE`` if set, else
    ``$XDG_CACHE_HOME/shortlist``, else ``~/.cache/shortlist``. The folder is not created."""
    explicit = os.environ.get("SHORTLIST_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "shortlist"
    return Path.home() / ".cache" / "shortlist"


def file_digest(path: str | os.PathLike[str], algo: str = "sha256") -> str:
    """The hex digest of a file's bytes with a :mod:`hashlib` algorithm (``"md5"``, ``"sha256"`` ...).

    Example::

        f"md5:{file_digest(path, 'md5')}" == remote.checksum  # what fetch checks
    """
    if algo not in hashlib.algorithms_available:
        raise ValueError(
            f"The 'algo' parameter of file_digest must be a hashlib algorithm such as "
            f"{_ALGORITHMS}. Got {algo!r} instead."
        )
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algo).hexdigest()


def fetch(
    files: Sequence[RemoteFile], dest: Path, *, progress: bool = True, timeout: float = 60
) -> Path:
    """Download (and unpack) a dataset's files into ``dest``, unless ``dest`` is already complete.

    ``dest`` is complete when it holds a ``.complete`` file and every file it lists; then it is
    returned at once, without network access. Otherwise the files are downloaded, verified and
    extracted in ``<dest>.partial-<random>``, which is renamed to ``dest`` only when all of them
    succeeded (see the module docstring).

    Args:
        files: the dataset's files; their ``filename`` values must be distinct.
        dest: the folder to create, usually ``cache_root() / <dataset name>``. If it exists it must
            be empty or have been made by :func:`fetch` (it then holds a ``.complete`` file).
        progress: show a rich progress bar on stderr for each file whose size is known; without it
            progress is logged with :mod:`logging`.
        timeout: seconds to wait for the server on connecting and on each read.

    Returns:
        ``dest``.

    Raises:
        DatasetNotFoundError: a file could not be downloaded (network error, HTTP error, timeout, a
            response shorter than announced); the message names the URL and how to use a local copy.
        ChecksumError: a file's checksum (or size) differs from the published one.
        DataValidationError: an archive is corrupt or has a member with an unsafe path.
        FileExistsError: ``dest`` exists, is not empty and was not made by :func:`fetch`.
        ValueError: bad arguments, or two files would put the same path into ``dest``.
    """
    files = list(files)
    dest = Path(dest)
    if not files:
        raise ValueError("The 'files' parameter of fetch must name at least one file. Got [].")
    names = [f.filename for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"The 'files' parameter of fetch must have distinct file names. Got {duplicates} twice."
        )
    if not timeout > 0:
        raise ValueError(f"The 'timeout' parameter of fetch must be > 0. Got {timeout!r} instead.")

    if _is_complete(dest, files):
        logger.debug("%s is complete; nothing to download.", dest)
        return dest
    _check_replaceable(dest)

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f"{dest.name}.partial-{secrets.token_hex(6)}")
    partial.mkdir()
    try:
        unverified: dict[str, str] = {}  # filename -> sha256, for files published without checksum
        for remote in files:
            downloaded, sha256 = _download(
                remote, partial, dest=dest, progress=progress, timeout=timeout
            )
            if remote.checksum is None:
                logger.warning(
                    "%s: the publisher gives no checksum, so the download cannot be verified; its "
                    "sha256 %s is recorded in %s so later downloads can be compared with it.",
                    remote.url,
                    sha256,
                    dest / CHECKSUMS_FILE,
                )
                unverified[remote.filename] = sha256
            _install(remote, downloaded, partial)
        if unverified:
            lines = "".join(f"{sha}  {name}\n" for name, sha in unverified.items())
            (partial / CHECKSUMS_FILE).write_text(lines, encoding="utf-8")
        listing = sorted(
            p.relative_to(partial).as_posix()
            for p in partial.rglob("*")
            if p.is_file() and p.name != COMPLETE_MARKER
        )
        (partial / COMPLETE_MARKER).write_text("".join(f"{n}\n" for n in listing), encoding="utf-8")
        _publish(partial, dest, files)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.info("%s is ready (%d files).", dest, len(listing))
    return dest


# ---------------------------------------------------------------------------------------------------
# The cache folder: completeness and the final rename


def _listed_files(dest: Path) -> list[str] | None:
    """The files listed in ``dest/.complete``, or None when there is no such file."""
    try:
        text = (dest / COMPLETE_MARKER).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [line for line in text.splitlines() if line]


def _is_complete(dest: Path, files: Sequence[RemoteFile]) -> bool:
    """Whether ``dest`` has a ``.complete`` file, every file it lists, and every file of ``files``
    that is kept as is (archives are unpacked, so their names are not in ``dest``)."""
    listed = _listed_files(dest)
    if listed is None:
        return False
    kept = {f.filename for f in files if not f.extract}
    return kept <= set(listed) and all((dest / name).is_file() for name in listed)


def _check_replaceable(dest: Path) -> None:
    """Refuse, before any download, a ``dest`` that fetch did not make and that holds something."""
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise FileExistsError(
            f"{dest} exists and is not a folder; remove it or choose another destination "
            "(nothing was downloaded)."
        )
    if _listed_files(dest) is not None:
        logger.warning("%s is incomplete (files are missing); downloading it again.", dest)
        return
    if any(dest.iterdir()):
        raise FileExistsError(
            f"{dest} exists, is not empty and has no {COMPLETE_MARKER} file, so it was not made by "
            "shortlist; remove it or choose another destination (nothing was downloaded)."
        )


def _publish(partial: Path, dest: Path, files: Sequence[RemoteFile]) -> None:
    """Rename the finished ``partial`` folder to ``dest`` in one step."""
    try:
        os.replace(partial, dest)  # also replaces an empty folder on POSIX
        return
    except OSError:
        if _is_complete(dest, files):  # another process finished the same dataset first
            logger.info("%s was completed by another process; discarding this copy.", dest)
            shutil.rmtree(partial)
            return
        if not dest.is_dir() or (_listed_files(dest) is None and any(dest.iterdir())):
            raise
    # dest is an incomplete folder made by fetch (or an empty one): swap it out, then delete it.
    stale = dest.with_name(f"{dest.name}.stale-{secrets.token_hex(6)}")
    os.replace(dest, stale)
    os.replace(partial, dest)
    shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Downloading one file


def _not_found(url: str, reason: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"Could not download {url}: {reason}. Nothing was kept. If this machine cannot reach it, "
        f"{HINT}."
    )


def _network_reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP error {error.code} ({error.reason})"
    if isinstance(error, urllib.error.URLError):
        if not isinstance(error.reason, TimeoutError):
            return str(error.reason)
        error = error.reason
    if isinstance(error, TimeoutError):
        return f"no answer within the {timeout:g} s timeout"
    return f"{type(error).__name__}: {error}"


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


class _LogProgress:
    """Progress without a bar: a log line at most every ``LOG_EVERY_S`` seconds."""

    def __init__(self, remote: RemoteFile, total: int | None) -> None:
        self.remote, self.total = remote, total
        self.received, self.last_log = 0, time.monotonic()

    def __call__(self, n_bytes: int) -> None:
        self.received += n_bytes
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_S:
            self.last_log = now
            of_total = f" of {self.total:,}" if self.total else ""
            logger.info(
                "%s: %s%s bytes downloaded", self.remote.filename, f"{self.received:,}", of_total
            )


@contextmanager
def _progress_reporter(
    remote: RemoteFile, total: int | None, show_bar: bool
) -> Iterator[Callable[[int], None]]:
    """Yield a function to call with each chunk's byte count: a rich progress bar when ``show_bar``
    and ``total`` is known, log lines otherwise."""
    if show_bar and total:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        columns += (TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(remote.filename, total=total)
            yield lambda n_bytes: bar.advance(task, n_bytes)
        return
    size = f"{total:,} bytes" if total else "size unknown"
    logger.info("Downloading %s (%s)", remote.url, size)
    yield _LogProgress(remote, total)


def _download(
    remote: RemoteFile, workdir: Path, *, dest: Path, progress: bool, timeout: float
) -> tuple[Path, str]:
    """Stream ``remote`` into a new temporary file in ``workdir`` and verify it.

    Returns:
        The temporary file and its sha256 hex digest. On any error the temporary file is deleted.
    """
    tmp = workdir / f".download-{secrets.token_hex(4)}-{remote.filename}"
    algorithm = remote.algorithm or "sha256"
    hashes = {"sha256": hashlib.sha256()}
    hashes.setdefault(algorithm, hashlib.new(algorithm))
    request = urllib.request.Request(remote.url, headers={"User-Agent": USER_AGENT})
    start = time.monotonic()
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            error.close()
            raise _not_found(remote.url, _network_reason(error, timeout)) from error
        except (OSError, http.client.HTTPException) as error:
            raise _not_found(remote.url, _network_reason(error, timeout)) from error
        declared = _content_length(response)
        received = 0
        with (
            response,
            tmp.open("xb") as out,
            _progress_reporter(remote, declared or remote.size, progress) as advance,
        ):
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as error:
                    reason = _network_reason(error, timeout)
                    raise _not_found(remote.url, f"{reason} after {received:,} bytes") from error
                if not chunk:
                    break
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                received += len(chunk)
                advance(len(chunk))
        if declared is not None and received != declared:
            raise _not_found(
                remote.url,
                f"the connection ended after {received:,} of the {declared:,} bytes announced",
            )
        if remote.size is not None and received != remote.size:
            raise ChecksumError(
                f"Size mismatch for {remote.url}: expected {remote.size:,} bytes, got "
                f"{received:,}. The download was deleted; nothing was kept in {dest}."
            )
        actual = hashes[algorithm].hexdigest()
        if remote.digest is not None and actual != remote.digest:
            raise ChecksumError(
                f"Checksum mismatch for {remote.url}: expected {algorithm}:{remote.digest}, got "
                f"{algorithm}:{actual}. The download was deleted; nothing was kept in {dest}."
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info(
        "Downloaded %s (%s bytes in %.1f s)", remote.url, f"{received:,}", time.monotonic() - start
    )
    return tmp, hashes["sha256"].hexdigest()


# ---------------------------------------------------------------------------------------------------
# Putting a download in place: as is, or unpacked


def _install(remote: RemoteFile, downloaded: Path, partial: Path) -> None:
    """Move a verified download into ``partial``: as is, or unpacked (and flattened) when
    ``remote.extract``. The downloaded archive itself is not kept."""
    if not remote.extract:
        os.replace(downloaded, partial / remote.filename)
        return
    staging = partial / f".extract-{secrets.token_hex(4)}"
    staging.mkdir()
    kind = archive_kind(remote.filename)
    try:
        if kind == "zip":
            _extract_zip(remote, downloaded, staging)
        elif kind == "tar":
            _extract_tar(remote, downloaded, staging)
        else:
            _gunzip(remote, downloaded, staging / remote.filename[: -len(".gz")])
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataValidationError(
            f"{remote.url}: {remote.filename} is not a valid {kind} archive ({error}). Nothing was "
            f"kept. If the server sent an error page instead of the file, {HINT}."
        ) from error
    downloaded.unlink()

    entries = list(staging.iterdir())
    root = staging
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        root = entries[0]  # one top-level folder (ml-100k/ in ml-100k.zip): flatten it
        logger.debug("Flattening the top-level folder %s/ of %s", root.name, remote.filename)
    for entry in sorted(root.iterdir()):
        target = partial / entry.name
        if entry.name in _RESERVED or target.exists() or target.is_symlink():
            raise ValueError(
                f"{remote.url}: {remote.filename} contains {entry.name!r}, which is reserved or was "
                "already put in the destination by an earlier file. Nothing was kept."
            )
        os.replace(entry, target)
    shutil.rmtree(staging)


def _unsafe_member(name: str) -> bool:
    """Whether an archive member's path is absolute or climbs out with ``..`` (zip-slip)."""
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        return True
    return ".." in re.split(r"[/\\]", name)


def _reject_member(remote: RemoteFile, name: str, why: str) -> DataValidationError:
    return DataValidationError(
        f"{remote.url}: the archive {remote.filename} has a member {name!r} {why}; refusing to "
        "extract it. Nothing was kept."
    )


def _extract_zip(remote: RemoteFile, archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:  # check every member before writing any
            if _unsafe_member(info.filename):
                raise _reject_member(remote, info.filename, "with an absolute path or '..'")
        for info in members:
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if path.parts and path.parts[0] == "__MACOSX":  # resource forks added by macOS zip
                continue
            target = staging.joinpath(*path.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)


def _extract_tar(remote: RemoteFile, archive: Path, staging: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for member in members:  # check every member before writing any
            if _unsafe_member(member.name):
                raise _reject_member(remote, member.name, "with an absolute path or '..'")
            if not (member.isfile() or member.isdir()):
                raise _reject_member(remote, member.name, "that is a link or a special file")
        if hasattr(
            tarfile, "data_filter"
        ):  # Python >= 3.11.4: the standard library's own checks too
            tf.extractall(staging, members=members, filter="data")
        else:
            tf.extractall(staging, members=members)


def _gunzip(remote: RemoteFile, archive: Path, target: Path) -> None:
    logger.debug("Decompressing %s to %s", remote.filename, target.name)
    with gzip.open(archive, "rb") as src, target.open("xb") as dst:
        shutil.copyfileobj(src, dst, CHUNK_SIZE)
