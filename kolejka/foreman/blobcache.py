"""Task input files on the node, by content hash, within a disk budget.

Many tasks share inputs (a judge's test data, a lab's data set), so a file is downloaded once and
linked into each task folder. The least recently used entries go first when the budget is passed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kolejka.common import KolejkaError
from kolejka.common.blobs import file_sha256, is_reference

Download = Callable[[str, Path], object]


class BlobMismatchError(KolejkaError):
    """A downloaded blob does not hash to its reference; it was thrown away."""


class BlobCache:
    """Blobs under `root`, at most `budget` bytes once trimmed. Safe for concurrent threads."""

    def __init__(self, root: Path, budget: int) -> None:
        self.root = root
        self.budget = budget
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, reference: str) -> Path:
        if not is_reference(reference):
            raise KolejkaError(f"not a blob reference: {reference!r}")
        return self.root / reference[:2] / reference

    def get(self, reference: str, download: Download) -> Path:
        """The cached file of `reference`; fetched by `download(reference, path)` if missing."""
        path = self._path(reference)
        if path.exists():
            os.utime(path)  # the mtime orders eviction: this entry was just used
            return path
        handle, name = tempfile.mkstemp(dir=self.root / "tmp")
        os.close(handle)
        temporary = Path(name)
        try:
            download(reference, temporary)
            actual, _ = file_sha256(temporary)
            if actual != reference:
                raise BlobMismatchError(f"blob {reference} arrived with hash {actual}")
            temporary.chmod(0o444)
            path.parent.mkdir(exist_ok=True)
            # Two threads may fetch one blob at once; both renames land the same bytes.
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return path

    def place(self, reference: str, download: Download, destination: Path) -> None:
        """Put the content of `reference` at `destination` (a hard link when the disk allows).

        The worker copies task files into the task's own workspace, so a task never writes
        through the link into the cache.
        """
        source = self.get(reference, download)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, destination)
        except OSError:
            shutil.copyfile(source, destination)

    def trim(self) -> int:
        """Remove least recently used entries until the cache fits its budget; return bytes freed.

        A task folder keeps its own hard link, so trimming never pulls a file from under a task.
        """
        entries = []
        for path in self.root.glob("??/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, path in sorted(entries):
            if total - freed <= self.budget:
                break
            path.unlink(missing_ok=True)
            freed += size
        return freed
