"""Reading and writing the JSON files of the format, with errors that name the file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import SpecError


def read_json(path: Path, what: str) -> Any:
    """Return the JSON document at `path`; raise `SpecError` naming the file when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise SpecError(what, str(path), "file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(what, str(path), f"is not valid JSON: {error}") from None


def write_json(path: Path, document: Mapping[str, Any] | Sequence[Any]) -> None:
    """Write `document` to `path` atomically (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
    os.replace(temporary, path)
