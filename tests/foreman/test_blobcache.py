"""Task inputs cached on the node by hash, checked, linked into task folders, trimmed LRU."""

import hashlib
import os

import pytest

from kolejka.foreman.blobcache import BlobCache, BlobMismatchError


def ref(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """Serves blobs to the cache and counts downloads."""

    def __init__(self, *blobs):
        self.blobs = {ref(blob): blob for blob in blobs}
        self.downloads = []

    def __call__(self, reference, path):
        self.downloads.append(reference)
        path.write_bytes(self.blobs[reference])


def test_it_downloads_once_and_reuses(tmp_path):
    server = Server(b"test data")
    cache = BlobCache(tmp_path / "cache", budget=2**20)
    first = cache.get(ref(b"test data"), server)
    second = cache.get(ref(b"test data"), server)
    assert first == second and first.read_bytes() == b"test data"
    assert server.downloads == [ref(b"test data")]


def test_it_refuses_content_that_does_not_match_its_hash(tmp_path):
    cache = BlobCache(tmp_path / "cache", budget=2**20)

    def liar(reference, path):
        path.write_bytes(b"something else")

    with pytest.raises(BlobMismatchError):
        cache.get(ref(b"expected"), liar)
    assert not list((tmp_path / "cache").glob("??/*"))
    assert not list((tmp_path / "cache" / "tmp").iterdir())


def test_it_places_files_in_task_folders_read_only(tmp_path):
    server = Server(b"input")
    cache = BlobCache(tmp_path / "cache", budget=2**20)
    cache.place(ref(b"input"), server, tmp_path / "task" / "sub" / "in.txt")
    placed = tmp_path / "task" / "sub" / "in.txt"
    assert placed.read_bytes() == b"input"
    assert not os.access(placed, os.W_OK) or os.geteuid() == 0
    assert placed.stat().st_mode & 0o222 == 0


def test_it_refuses_references_that_are_not_hashes(tmp_path):
    cache = BlobCache(tmp_path / "cache", budget=2**20)
    with pytest.raises(Exception, match="not a blob reference"):
        cache.get("../../etc/passwd", Server())


def test_it_trims_least_recently_used_first(tmp_path):
    blobs = [bytes([n]) * 1000 for n in range(3)]
    server = Server(*blobs)
    cache = BlobCache(tmp_path / "cache", budget=2000)
    paths = [cache.get(ref(blob), server) for blob in blobs]
    for age, path in enumerate(paths):
        os.utime(path, (1000 + age, 1000 + age))
    cache.get(ref(blobs[0]), server)  # used again: now the newest
    assert cache.trim() == 1000
    assert [path.exists() for path in paths] == [True, False, True]
