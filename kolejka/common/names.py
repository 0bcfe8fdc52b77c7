"""The one rule for file names in tasks and results.

A name is a relative POSIX path inside the task (or result) folder. Server, client, foreman and
worker all call `check_name`, so a name one part accepts is accepted by all of them, and a name
that could escape a folder is refused everywhere.
"""

from __future__ import annotations

from .errors import SpecError

TASK_SPEC = "kolejka_task.json"
RESULT_SPEC = "kolejka_result.json"
RESERVED_NAMES = frozenset({TASK_SPEC, RESULT_SPEC})

MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255


def check_name(name: object, field: str, *, reserved: bool = True) -> str:
    """Return `name` if it is a safe relative file name, else raise `SpecError` saying why.

    Refused: non-strings, the empty name, absolute paths, ``.`` and ``..`` components, empty
    components (``a//b``, a trailing ``/``), backslashes, NUL and other control characters,
    names too long for a file system, and (unless `reserved` is false) the names the format
    itself uses at the top of a folder (``kolejka_task.json``, ``kolejka_result.json``).
    """
    if not isinstance(name, str):
        raise SpecError(field, name, "a file name must be a string")
    if not name:
        raise SpecError(field, name, "a file name must not be empty")
    if name.startswith("/"):
        raise SpecError(field, name, "a file name must be relative, not absolute")
    if "\\" in name:
        raise SpecError(field, name, "a file name must not contain a backslash")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        raise SpecError(field, name, "a file name must not contain NUL or control characters")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(field, name, "a file name must be valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise SpecError(field, name, f"a file name must be at most {MAX_NAME_BYTES} bytes")
    for part in name.split("/"):
        if part in ("", "."):
            raise SpecError(field, name, "a file name must not have empty or '.' components")
        if part == "..":
            raise SpecError(field, name, "a file name must not contain '..'")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise SpecError(
                field, name, f"each part of a file name must be at most {MAX_COMPONENT_BYTES} bytes"
            )
    if reserved and name in RESERVED_NAMES:
        raise SpecError(field, name, "this name is reserved for the task and result files")
    return name
