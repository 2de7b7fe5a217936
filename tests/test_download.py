"""Tests for shortlist.data.download against a real HTTP server on 127.0.0.1 (an ephemeral port).

A guard on socket.create_connection fails any test that tries to reach another host, and counts
connections so a test can show that a cached dataset is returned without network access.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import logging
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shortlist.data.download import (
    CHECKSUMS_FILE,
    COMPLETE_MARKER,
    HINT,
    RemoteFile,
    cache_root,
    fetch,
    file_digest,
)
from shortlist.data.errors import ChecksumError, DatasetNotFoundError, DataValidationError

ZIP_MEMBERS = {
    "toy/ratings.csv": b"user,item\n1,2\n2,3\n",
    "toy/items.txt": b"2 red shoes\n3 a hat\n",
}
PLAIN = b"a plain file, served as is\n" * 10


@dataclass
class Connections:
    """Hosts the code under test connected to."""

    hosts: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> Connections:
    """Allow connections to 127.0.0.1 only (no proxy), and record them."""
    for var in ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    seen = Connections()
    original = socket.create_connection

    def guarded(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        assert address[0] == "127.0.0.1", f"test tried to contact {address}"
        seen.hosts.append(address[0])
        return original(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", guarded)
    return seen


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, plus /truncated.bin (announces 1000 bytes, sends 100 and closes) and
    /slow.bin (sends nothing until the test ends)."""

    def do_GET(self) -> None:
        if self.path == "/truncated.bin":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/slow.bin":
            self.server.release.wait(5)  # type: ignore[attr-defined]
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Server:
    url: str
    root: Path
    httpd: http.server.ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.release.set()  # type: ignore[attr-defined]
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz_bytes(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink is not None:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    return buf.getvalue()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "toy.zip").write_bytes(_zip_bytes(ZIP_MEMBERS))
    (root / "plain.txt").write_bytes(PLAIN)
    handler = functools.partial(Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    srv = Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, httpd, thread)
    yield srv
    srv.stop()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _checksum(path: Path, algo: str) -> str:
    return f"{algo}:{hashlib.new(algo, path.read_bytes()).hexdigest()}"


def _toy_files(server: Server, algo: str) -> list[RemoteFile]:
    return [
        RemoteFile(
            f"{server.url}/toy.zip",
            "toy.zip",
            _checksum(server.root / "toy.zip", algo),
            extract=True,
        ),
        RemoteFile(
            f"{server.url}/plain.txt",
            "plain.txt",
            _checksum(server.root / "plain.txt", algo),
            size=len(PLAIN),
        ),
    ]


@pytest.mark.parametrize("algo", ["md5", "sha256"])
def test_fetch_verifies_extracts_flattens_and_caches(
    server: Server, cache: Path, only_localhost: Connections, algo: str
) -> None:
    dest = cache / "toy"
    assert fetch(_toy_files(server, algo), dest, progress=False, timeout=5) == dest

    assert sorted(p.name for p in cache.iterdir()) == ["toy"]  # no partial or temporary leftovers
    assert (dest / "ratings.csv").read_bytes() == ZIP_MEMBERS["toy/ratings.csv"]  # flattened
    assert (dest / "items.txt").read_bytes() == ZIP_MEMBERS["toy/items.txt"]
    assert (dest / "plain.txt").read_bytes() == PLAIN
    assert not (dest / "toy").exists() and not (dest / "toy.zip").exists()
    assert not (dest / CHECKSUMS_FILE).exists()  # every file had a checksum
    listed = (dest / COMPLETE_MARKER).read_text().split()
    assert listed == ["items.txt", "plain.txt", "ratings.csv"]
    assert len(only_localhost.hosts) == 2

    server.stop()
    assert fetch(_toy_files(server, algo), dest, progress=False, timeout=5) == dest
    assert len(only_localhost.hosts) == 2  # the second call did not touch the network


def test_fetch_with_progress_bar(server: Server, cache: Path) -> None:
    dest = fetch(_toy_files(server, "sha256")[1:], cache / "plain", progress=True, timeout=5)
    assert (dest / "plain.txt").read_bytes() == PLAIN


def test_wrong_checksum_keeps_nothing(server: Server, cache: Path) -> None:
    plain = server.root / "plain.txt"
    actual = hashlib.sha256(PLAIN).hexdigest()
    wrong = "0" * 64
    files = [
        RemoteFile(
            f"{server.url}/toy.zip",
            "toy.zip",
            _checksum(server.root / "toy.zip", "md5"),
            extract=True,
        ),
        RemoteFile(f"{server.url}/plain.txt", plain.name, f"sha256:{wrong}"),
    ]
    with pytest.raises(ChecksumError) as info:
        fetch(files, cache / "toy", progress=False, timeout=5)
    message = str(info.value)
    assert f"{server.url}/plain.txt" in message
    assert f"expected sha256:{wrong}" in message and f"got sha256:{actual}" in message
    assert "nothing was kept" in message
    assert list(cache.iterdir()) == []  # not even the already extracted zip


def test_wrong_size_keeps_nothing(server: Server, cache: Path) -> None:
    files = [RemoteFile(f"{server.url}/plain.txt", "plain.txt", None, size=len(PLAIN) + 1)]
    with pytest.raises(ChecksumError, match="Size mismatch"):
        fetch(files, cache / "plain", progress=False, timeout=5)
    assert list(cache.iterdir()) == []


def test_missing_checksum_warns_and_records_sha256(
    server: Server, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = [RemoteFile(f"{server.url}/plain.txt", "plain.txt", None)]
    with caplog.at_level(logging.WARNING, logger="shortlist.data.download"):
        dest = fetch(files, cache / "plain", progress=False, timeout=5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "publisher gives no checksum" in warnings[0]
    sha = hashlib.sha256(PLAIN).hexdigest()
    assert (dest / CHECKSUMS_FILE).read_text() == f"{sha}  plain.txt\n"
    assert CHECKSUMS_FILE in (dest / COMPLETE_MARKER).read_text().split()


def test_http_404_raises_dataset_not_found(server: Server, cache: Path) -> None:
    url = f"{server.url}/missing.zip"
    with pytest.raises(DatasetNotFoundError) as info:
        fetch([RemoteFile(url, "missing.zip", None, extract=True)], cache / "m", progress=False)
    message = str(info.value)
    assert url in message and "404" in message and HINT in message
    assert list(cache.iterdir()) == []


def test_connection_refused_raises_dataset_not_found(server: Server, cache: Path) -> None:
    url = f"{server.url}/plain.txt"
    server.stop()
    with pytest.raises(DatasetNotFoundError, match=url):
        fetch([RemoteFile(url, "plain.txt", None)], cache / "p", progress=False, timeout=5)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("progress", [False, True])
def test_truncated_response_keeps_nothing(server: Server, cache: Path, progress: bool) -> None:
    url = f"{server.url}/truncated.bin"
    files = [
        RemoteFile(f"{server.url}/plain.txt", "plain.txt", None),
        RemoteFile(url, "truncated.bin", None),
    ]
    with pytest.raises(DatasetNotFoundError, match="100 of the 1,000 bytes") as info:
        fetch(files, cache / "t", progress=progress, timeout=5)
    assert url in str(info.value)
    assert list(cache.iterdir()) == []


def test_timeout_raises_dataset_not_found(server: Server, cache: Path) -> None:
    url = f"{server.url}/slow.bin"
    with pytest.raises(DatasetNotFoundError, match="timeout") as info:
        fetch([RemoteFile(url, "slow.bin", None)], cache / "s", progress=False, timeout=0.2)
    assert url in str(info.value)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("member", ["../evil.txt", "/evil.txt", "toy/../../evil.txt"])
def test_zip_slip_member_rejected(server: Server, cache: Path, tmp_path: Path, member: str) -> None:
    (server.root / "slip.zip").write_bytes(_zip_bytes({"toy/ok.txt": b"ok", member: b"pwned"}))
    files = [RemoteFile(f"{server.url}/slip.zip", "slip.zip", None, extract=True)]
    with pytest.raises(DataValidationError, match="refusing to extract") as info:
        fetch(files, cache / "slip", progress=False, timeout=5)
    assert repr(member) in str(info.value)
    assert list(cache.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/evil.txt").exists()


def test_tar_gz_extracted_and_flattened(server: Server, cache: Path) -> None:
    members = {"data/a.txt": b"a", "data/sub/b.txt": b"b"}
    (server.root / "t.tar.gz").write_bytes(_tar_gz_bytes(members))
    files = [RemoteFile(f"{server.url}/t.tar.gz", "t.tar.gz", None, extract=True)]
    dest = fetch(files, cache / "t", progress=False, timeout=5)
    assert (dest / "a.txt").read_bytes() == b"a" and (dest / "sub" / "b.txt").read_bytes() == b"b"
    listed = (dest / COMPLETE_MARKER).read_text().split()
    assert listed == [CHECKSUMS_FILE, "a.txt", "sub/b.txt"]


@pytest.mark.parametrize(("name", "symlink"), [("../evil.txt", None), ("data/ok.txt", "data/link")])
def test_unsafe_tar_member_rejected(
    server: Server, cache: Path, name: str, symlink: str | None
) -> None:
    (server.root / "t.tgz").write_bytes(_tar_gz_bytes({name: b"x"}, symlink=symlink))
    files = [RemoteFile(f"{server.url}/t.tgz", "t.tgz", None, extract=True)]
    with pytest.raises(DataValidationError, match="refusing to extract"):
        fetch(files, cache / "t", progress=False, timeout=5)
    assert list(cache.iterdir()) == []


def test_single_gz_file_decompressed(server: Server, cache: Path) -> None:
    (server.root / "log.csv.gz").write_bytes(gzip.compress(b"u,i\n1,2\n"))
    files = [RemoteFile(f"{server.url}/log.csv.gz", "log.csv.gz", None, extract=True)]
    dest = fetch(files, cache / "g", progress=False, timeout=5)
    assert (dest / "log.csv").read_bytes() == b"u,i\n1,2\n"
    assert not (dest / "log.csv.gz").exists()


def test_corrupt_archive_keeps_nothing(server: Server, cache: Path) -> None:
    (server.root / "bad.zip").write_bytes(b"<html>not a zip</html>")
    files = [RemoteFile(f"{server.url}/bad.zip", "bad.zip", None, extract=True)]
    with pytest.raises(DataValidationError, match="not a valid zip archive"):
        fetch(files, cache / "b", progress=False, timeout=5)
    assert list(cache.iterdir()) == []


def test_foreign_folder_is_not_overwritten(
    server: Server, cache: Path, only_localhost: Connections
) -> None:
    dest = cache / "toy"
    dest.mkdir(parents=True)
    (dest / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not made by shortlist"):
        fetch(_toy_files(server, "md5"), dest, progress=False, timeout=5)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert only_localhost.hosts == []


def test_incomplete_cache_is_rebuilt(server: Server, cache: Path) -> None:
    dest = fetch(_toy_files(server, "md5"), cache / "toy", progress=False, timeout=5)
    (dest / "items.txt").unlink()  # damaged after the fact
    fetch(_toy_files(server, "md5"), dest, progress=False, timeout=5)
    assert (dest / "items.txt").read_bytes() == ZIP_MEMBERS["toy/items.txt"]
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]


def test_empty_existing_folder_is_filled(server: Server, cache: Path) -> None:
    dest = cache / "toy"
    dest.mkdir(parents=True)
    fetch(_toy_files(server, "sha256"), dest, progress=False, timeout=5)
    assert (dest / "ratings.csv").is_file()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"checksum": "md5:abc"}, "'checksum' parameter"),
        ({"checksum": "crc32:" + "0" * 8}, "'checksum' parameter"),
        ({"filename": "../x.zip"}, "'filename' parameter"),
        ({"url": "gopher://x/y.zip"}, "'url' parameter"),
        ({"filename": "x.rar", "extract": True}, "extract=True"),
        ({"size": -1}, "'size' parameter"),
    ],
)
def test_remote_file_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "url": "https://example.org/x.zip",
        "filename": "x.zip",
        "checksum": None,
    }
    with pytest.raises(ValueError, match=match):
        RemoteFile(**{**args, **kwargs})  # type: ignore[arg-type]


def test_fetch_rejects_duplicate_names(cache: Path) -> None:
    remote = RemoteFile("https://example.org/x.zip", "x.zip", None)
    with pytest.raises(ValueError, match="distinct"):
        fetch([remote, remote], cache / "x")


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHORTLIST_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("SHORTLIST_CACHE")
    assert cache_root() == tmp_path / "xdg" / "shortlist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "shortlist"


def test_file_digest_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"shortlist" * 1000)
    assert file_digest(path, "md5") == hashlib.md5(b"shortlist" * 1000).hexdigest()
    assert file_digest(path) == hashlib.sha256(b"shortlist" * 1000).hexdigest()
    with pytest.raises(ValueError, match="'algo' parameter"):
        file_digest(path, "nope")
