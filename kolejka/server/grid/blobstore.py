"""Where blob contents live: one object per content, named by its sha256.

Two stores keep the same contract (`BlobStore`): the disk store (`blobdisk`, the default, a
folder in the data folder or on a filesystem every server mounts) and the S3 store (`blobs3`,
any S3-compatible object store every server reaches). ``KOLEJKA_BLOB_STORE`` picks one.

An upload streams through a `Hashing` reader into a temporary place of the store, so memory
stays flat whatever its size; only a complete upload of the right hash is moved to its content
name (`adopt`). A temporary object never outlives the upload that wrote it unless its process
died; `sweep` removes those.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header

from .errors import Invalid, TooLarge

CHUNK = 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Received:
    """A complete upload in the store's temporary place (`handle`), not yet in the store."""

    reference: str
    size: int
    handle: str


@dataclass(frozen=True)
class Trashed:
    """A blob's content moved aside (to `handle`) while its row is deleted."""

    reference: str
    handle: str


class BlobStore(Protocol):
    def receive(
        self, stream: Readable, length: int | None, cap: int, expected: str | None
    ) -> AbstractContextManager[Received]:
        """Read an upload of `length` bytes (`None`: until the stream ends) into a temporary
        place. Raises what `Hashing` raises; the temporary copy is removed when the block ends
        unless `adopt` took it."""

    def adopt(self, received: Received) -> None:
        """Move a received upload to its content name (replacing a missing or damaged copy)."""

    def has(self, reference: str) -> bool: ...

    def open(self, reference: str, start: int = 0) -> BinaryIO | None:
        """The content from byte `start` on, to read as a stream (the caller closes it); `None`
        if it is missing."""

    def trash(self, reference: str) -> Trashed | None:
        """Move the content away from its name; `None` if it is missing. An upload of the same
        content after this finds no content and stores its own, which `discard` leaves alone."""

    def untrash(self, trashed: Trashed) -> None: ...

    def discard(self, trashed: Trashed) -> None: ...

    def sweep(self, older_than: float) -> int:
        """Remove the temporary copies (and trash) older than `older_than` (a Unix time) that
        died with their process; return how many."""

    def problem(self) -> str | None:
        """Why the store cannot serve now (for the system check), or `None`."""


class Hashing:
    """A reader of an upload that hashes and counts what passes through it.

    Reads at most `length` bytes (all of the stream when `None`) and at most ``cap + 1``.
    Raises `TooLarge` once more than `cap` bytes are announced or arrive, `Invalid` when the
    stream ends before `length`.
    """

    def __init__(self, stream: Readable, length: int | None, cap: int) -> None:
        refuse_oversize(length, cap)
        self.stream = stream
        self.length = length
        self.cap = cap
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = CHUNK, /) -> bytes:
        """Up to `size` bytes; fewer only at the end (as a buffered file answers, which S3's
        transfer takes a short part for)."""
        want = CHUNK if size is None or size < 0 else size
        pieces = []
        while want > 0 and (piece := self._piece(want)):
            pieces.append(piece)
            want -= len(piece)
        return b"".join(pieces)

    def _piece(self, want: int) -> bytes:
        if self.length is not None:
            want = min(want, self.length - self.size)
        if want == 0:
            return b""
        chunk = self.stream.read(min(want, self.cap + 1 - self.size))
        if not chunk:
            if self.length is not None and self.size < self.length:
                raise Invalid(f"the upload ended after {self.size} of {self.length} bytes")
            return b""
        self.size += len(chunk)
        if self.size > self.cap:
            raise TooLarge(f"the blob is larger than this server's cap of {self.cap} bytes")
        self.digest.update(chunk)
        return chunk

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def reference(self, expected: str | None) -> str:
        """The sha256 of what was read; raises `Invalid` when it is not `expected`."""
        reference = self.digest.hexdigest()
        if expected is not None and expected != reference:
            raise Invalid(
                f"the content's sha256 is {reference}, not {expected}", field="X-Kolejka-Sha256"
            )
        return reference


STREAM_BLOCK = 1 << 16


def response(
    request: HttpRequest, content: BinaryIO, size: int, attachment: str | None = None
) -> StreamingHttpResponse:
    """`content` (a store's reader, closed at the end) streamed as the answer to `request`.
    Under ASGI, Django would read a synchronous body whole into memory before sending any of
    it: there the blocks are read in threads one at a time instead."""
    answer: StreamingHttpResponse
    if isinstance(request, ASGIRequest):
        answer = StreamingHttpResponse(_blocks(content), content_type="application/octet-stream")
        if attachment is not None:
            answer["Content-Disposition"] = content_disposition_header(True, attachment)
    else:
        answer = FileResponse(
            content,
            content_type="application/octet-stream",
            as_attachment=attachment is not None,
            filename=attachment or "",
        )
    answer["Content-Length"] = str(size)
    return answer


async def _blocks(content: BinaryIO) -> AsyncIterator[bytes]:
    read = sync_to_async(content.read, thread_sensitive=False)
    try:
        while block := await read(STREAM_BLOCK):
            yield block
    finally:
        await sync_to_async(content.close, thread_sensitive=False)()


def refuse_oversize(length: int | None, cap: int) -> None:
    if length is not None and length > cap:
        raise TooLarge(f"the blob is {length} bytes; this server takes at most {cap}")


_made: dict[int, BlobStore] = {}
_making = threading.Lock()


def backend() -> BlobStore:
    """This process's store, as the settings say. One per process: gunicorn's workers are forked
    from the process that ran the start-up checks, and must not share its connections."""
    with _making:
        store = _made.get(os.getpid())
        if store is None:
            store = _made[os.getpid()] = _make()
        return store


def _make() -> BlobStore:
    if settings.BLOB_STORE == "s3":
        from .blobs3 import S3Store

        return S3Store(settings.S3_BUCKET, settings.S3_PREFIX, settings.S3_ENDPOINT)
    from .blobdisk import DiskStore

    return DiskStore(settings.BLOB_ROOT)
