"""The blob store on disk: one file per content, ``ab/cd/abcd...``, written through ``tmp/``.

Every server of a grid may share it on a network filesystem: `adopt`, `trash` and `untrash`
are renames within one folder tree, atomic wherever rename(2) is (NFS included), so a reader
sees a whole file or none.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .blobstore import Hashing, Readable, Received, Trashed


class DiskStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.temporary = self.root / "tmp"

    def path_of(self, reference: str) -> Path:
        return self.root / reference[:2] / reference[2:4] / reference

    @contextmanager
    def receive(
        self, stream: Readable, length: int | None, cap: int, expected: str | None
    ) -> Iterator[Received]:
        reader = Hashing(stream, length, cap)
        self.temporary.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=self.temporary, prefix="upload-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                for chunk in reader.chunks():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            yield Received(reader.reference(expected), reader.size, name)
        finally:
            Path(name).unlink(missing_ok=True)

    def adopt(self, received: Received) -> None:
        target = self.path_of(received.reference)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(received.handle, target)

    def has(self, reference: str) -> bool:
        return self.path_of(reference).is_file()

    def open(self, reference: str, start: int = 0) -> BinaryIO | None:
        try:
            content = open(self.path_of(reference), "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            return None
        content.seek(start)
        return content

    def trash(self, reference: str) -> Trashed | None:
        # In tmp/, so that `sweep` removes it if this process dies before `discard`.
        target = self.temporary / f"trash-{reference}-{uuid.uuid4().hex}"
        self.temporary.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.path_of(reference), target)
        except FileNotFoundError:
            return None
        os.utime(target)  # a fresh mtime: no other process's `sweep` takes it before `discard`
        return Trashed(reference, str(target))

    def untrash(self, trashed: Trashed) -> None:
        os.replace(trashed.handle, self.path_of(trashed.reference))

    def discard(self, trashed: Trashed) -> None:
        Path(trashed.handle).unlink(missing_ok=True)

    def sweep(self, older_than: float) -> int:
        if not self.temporary.is_dir():
            return 0
        removed = 0
        for entry in self.temporary.iterdir():
            try:
                if entry.stat().st_mtime < older_than:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its upload finished, or another sweep took it
        return removed

    def problem(self) -> str | None:
        return None  # the data folder's check (kolejka.E001) covers it
