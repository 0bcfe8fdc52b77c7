"""Blob references: a stored content is named by the sha256 of its bytes, in lower-case hex.

The server's blob store, the foreman's cache, the client's transfers and the task format all
name contents by this rule and compute it with `file_sha256`.
"""

from __future__ import annotations

import hashlib
import os
import re

from .errors import SpecError

CHUNK = 1 << 20
_REFERENCE = re.compile(r"[0-9a-f]{64}")


def is_reference(value: object) -> bool:
    """Whether `value` is a blob reference: 64 lower-case hex digits."""
    return isinstance(value, str) and _REFERENCE.fullmatch(value) is not None


def check_reference(value: object, field: str) -> str:
    """`value` if it is a blob reference; `SpecError` naming `field` otherwise."""
    if not is_reference(value):
        raise SpecError(field, value, "must be a blob reference: a sha256 in lower-case hex")
    assert isinstance(value, str)
    return value


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The reference (sha256) and the size in bytes of the file at `path`, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
