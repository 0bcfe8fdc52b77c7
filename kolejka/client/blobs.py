"""Blob transfers: uploads that skip content the server already has, downloads checked against
their reference. Both stream in chunks, so memory stays flat whatever the file's size."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

from kolejka.common.blobs import file_sha256

from .errors import LocalFileError, NotFound, TransferError
from .transport import Transport

CHUNK = 1 << 20
# Transfers smaller than this get no progress bar: they are over before one would help.
PROGRESS_MIN = 4 << 20


class ProgressBar(Protocol):
    """What a transfer reports its progress to (a `tqdm` bar is one)."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


# Makes a bar for a transfer: (description, total bytes) -> bar.
ProgressFactory = Callable[[str, int], ProgressBar]


@dataclass(frozen=True)
class Blob:
    """A stored content: its sha256 `reference` and `size` in bytes."""

    reference: str
    size: int


class _NoProgress:
    def update(self, n: int) -> object:
        return None

    def close(self) -> None:
        return None


def _bar(progress: ProgressFactory | None, description: str, total: int) -> ProgressBar:
    if progress is None or total < PROGRESS_MIN:
        return _NoProgress()
    return progress(description, total)


def file_digest(path: Path) -> Blob:
    """The reference and size of the file at `path`, read in chunks."""
    return Blob(*file_sha256(path))


class _Reader:
    """A file opened for an upload that tells `bar` how far it got; `len` gives Content-Length."""

    def __init__(self, path: Path, size: int, bar: ProgressBar) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - requests closes it through close()
        self._size = size
        self._bar = bar

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._bar.update(len(data))
        return data

    def close(self) -> None:
        self._file.close()


def exists(transport: Transport, reference: str) -> bool:
    """Whether the caller may read the blob `reference` (so it needs no upload)."""
    try:
        transport.request("HEAD", f"blobs/{reference}/")
    except NotFound:
        return False
    return True


def upload_file(transport: Transport, path: Path, progress: ProgressFactory | None = None) -> Blob:
    """Store the file at `path` as a blob, unless the caller already has it; return it.

    Raises `LocalFileError` when the file cannot be read, `TooLarge` or `QuotaExceeded` when the
    server will not take it.
    """
    try:
        blob = file_digest(path)
        if exists(transport, blob.reference):
            return blob
        bar = _bar(progress, f"upload {path.name}", blob.size)
        try:
            answer = transport.json(
                "POST",
                "blobs/",
                body=lambda: _Reader(path, blob.size, bar),
                headers={
                    "Content-Type": "application/octet-stream",
                    "X-Kolejka-Sha256": blob.reference,
                },
                safe=True,  # the content is its own address: storing it twice changes nothing
            )
        finally:
            bar.close()
    except OSError as error:
        raise LocalFileError(f"{path}: cannot read it: {error.strerror or error}") from None
    return _stored(answer, blob)


def upload_bytes(transport: Transport, data: bytes) -> Blob:
    """Store `data` as a blob, unless the caller already has it; return it."""
    blob = Blob(hashlib.sha256(data).hexdigest(), len(data))
    if exists(transport, blob.reference):
        return blob
    answer = transport.json(
        "POST",
        "blobs/",
        body=lambda: data,
        headers={"Content-Type": "application/octet-stream", "X-Kolejka-Sha256": blob.reference},
        safe=True,
    )
    return _stored(answer, blob)


def _stored(answer: object, blob: Blob) -> Blob:
    reference = answer.get("reference") if isinstance(answer, dict) else None
    if reference != blob.reference:
        raise TransferError(
            f"the server stored the upload as {reference!r}, but its sha256 is {blob.reference}"
        )
    return blob


def download(
    transport: Transport,
    reference: str,
    target: Path,
    progress: ProgressFactory | None = None,
    label: str | None = None,
) -> Blob:
    """Write the blob `reference` to `target`, checking its sha256; return it.

    The content goes to a temporary file beside `target`, which replaces `target` only once the
    hash matches, so `target` never holds wrong or partial content. A broken connection restarts
    the download (as many times as the transport retries). Raises `TransferError` on a hash
    mismatch, `LocalFileError` for a file that cannot be written, `NotFound` for an unknown blob.
    """
    attempt = 0
    while True:
        response = transport.request("GET", f"blobs/{reference}/", stream=True)
        try:
            blob, partial = _receive(response, target, progress, label or target.name)
            break
        except requests.exceptions.RequestException as error:
            if attempt >= transport.retries:
                raise TransferError(f"downloading {reference} broke off: {error}") from error
            attempt += 1
        except OSError as error:
            raise LocalFileError(f"{target}: cannot write it: {error.strerror or error}") from None
    if blob.reference != reference:
        partial.unlink(missing_ok=True)
        raise TransferError(
            f"blob {reference}: the server sent content whose sha256 is {blob.reference}; "
            "nothing was written"
        )
    os.replace(partial, target)
    return blob


def _receive(
    response: requests.Response, target: Path, progress: ProgressFactory | None, label: str
) -> tuple[Blob, Path]:
    """Write `response`'s body to a new temporary file beside `target`; remove it on failure."""
    with response:
        total = int(response.headers.get("Content-Length") or 0)
        # A fresh, unique name (made with O_EXCL): it clashes with no file of the folder.
        descriptor, name = tempfile.mkstemp(prefix=".kolejka-", suffix=".part", dir=target.parent)
        partial = Path(name)
        bar = _bar(progress, f"download {label}", total)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(descriptor, "wb") as out:
                os.fchmod(out.fileno(), 0o644)
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            bar.close()
    return Blob(digest.hexdigest(), size), partial
