"""The blob store on disk: one file per content, named by its sha256, written through a temp file.

An upload streams into ``tmp/`` while it is hashed, so memory stays flat whatever its size;
only a complete upload of the right hash is renamed into place. A temp file never outlives the
upload that wrote it: every error path removes it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings

from .errors import Invalid, TooLarge

CHUNK = 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Received:
    """A complete upload in a temp file, not yet in the store."""

    reference: str
    size: int
    path: Path


def root() -> Path:
    return Path(settings.BLOB_ROOT)


def path_of(reference: str) -> Path:
    return root() / reference[:2] / reference[2:4] / reference


def refuse_oversize(length: int | None, cap: int) -> None:
    if length is not None and length > cap:
        raise TooLarge(f"the blob is {length} bytes; this server takes at most {cap}")


@contextmanager
def receive(
    stream: Readable, length: int | None, cap: int, expected: str | None
) -> Iterator[Received]:
    """Read an upload of `length` bytes (`None`: until the stream ends) into a temp file.

    Raises `TooLarge` once more than `cap` bytes are announced or arrive (reading at most
    ``cap + 1``), `Invalid` when the stream ends early or its sha256 is not `expected`. The temp
    file is removed when the block ends unless `adopt` took it.
    """
    refuse_oversize(length, cap)
    temporary = root() / "tmp"
    temporary.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=temporary, prefix="upload-")
    path = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(descriptor, "wb") as handle:
            while length is None or size < length:
                want = CHUNK if length is None else min(CHUNK, length - size)
                chunk = stream.read(min(want, cap + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise TooLarge(f"the blob is larger than this server's cap of {cap} bytes")
                digest.update(chunk)
                handle.write(chunk)
            if length is not None and size < length:
                raise Invalid(f"the upload ended after {size} of {length} bytes")
            handle.flush()
            os.fsync(handle.fileno())
        reference = digest.hexdigest()
        if expected is not None and expected != reference:
            raise Invalid(
                f"the content's sha256 is {reference}, not {expected}", field="X-Kolejka-Sha256"
            )
        yield Received(reference, size, path)
    finally:
        path.unlink(missing_ok=True)


def adopt(received: Received) -> None:
    """Move a received upload into the store (replacing a missing or damaged copy)."""
    target = path_of(received.reference)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(received.path, target)


def has_file(reference: str) -> bool:
    return path_of(reference).is_file()


def open_blob(reference: str) -> BinaryIO:
    return open(path_of(reference), "rb")


def trash(reference: str) -> Path | None:
    """Move a blob's file aside (to delete it once its row is gone); `None` if it is missing."""
    source = path_of(reference)
    target = root() / "tmp" / f"trash-{reference}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except FileNotFoundError:
        return None
    return target


def untrash(reference: str, trashed: Path) -> None:
    os.replace(trashed, path_of(reference))


def leftovers(older_than: float) -> Iterator[Path]:
    """Temp files of uploads that died with their server process, older than `older_than`."""
    temporary = root() / "tmp"
    if not temporary.is_dir():
        return
    for entry in temporary.iterdir():
        try:
            if entry.stat().st_mtime < older_than:
                yield entry
        except FileNotFoundError:
            continue
