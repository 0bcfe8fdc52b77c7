"""Globs over file names, the one rule for both directions: input files a task folder gives by
folder or glob (expanded where the folder is read), and result files a task collects."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import SpecError
from .names import RESERVED_NAMES, check_name


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression for a glob: ``*``, ``?`` and ``[...]`` stay within one folder, a
    ``**`` component spans any number of folders (also none)."""
    parts = pattern.split("/")
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _component(part) + ("" if last else "/")
    return re.compile(regex, re.DOTALL)


def _component(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in part[i + 2 :]:
            end = part.index("]", i + 2)
            body = part[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _literal_folder(pattern: str) -> str:
    """The leading folders of `pattern` that hold no glob character: where its matches start."""
    parts = pattern.split("/")[:-1]
    fixed = []
    for part in parts:
        if any(char in part for char in "*?["):
            break
        fixed.append(part)
    return "/".join(fixed)


def _files_below(root: Path, folder: str) -> Iterator[str]:
    """Names (relative to `root`) of the files below `root/folder`, sorted. Symlinks to files
    are the submitter's own files and count; symlinked folders are not entered (no loops)."""
    stack = [folder]
    found = []
    while stack:
        prefix = stack.pop()
        with os.scandir(root / prefix if prefix else root) as entries:
            for entry in entries:
                name = f"{prefix}/{entry.name}" if prefix else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(name)
                elif entry.is_file() and name not in RESERVED_NAMES:
                    found.append(name)
    yield from sorted(found)


def expand_file_sets(files: object, root: Path) -> object:
    """`files` of a task read from the folder `root`, with each folder entry
    (``{"folder": "tests"}``: every file below it) and glob entry (``{"glob": "tests/*.in"}``:
    every file it matches) replaced by one entry per file, named under the entry's key: a
    folder's files keep their names relative to it, a glob's their names relative to its
    leading folders without glob characters. Anything else is left for `Task.from_dict` to
    check. Raises `SpecError` naming the entry for a missing folder, a glob that matches
    nothing, or an expanded name that another entry already has."""
    if not isinstance(files, Mapping):
        return files
    result: dict[str, Any] = {}
    expanded: dict[str, str] = {}
    for key, spec in files.items():
        if not (isinstance(spec, Mapping) and ({"folder", "glob"} & set(spec))):
            result[key] = spec
            continue
        field = f"files.{key}"
        check_name(key, field)
        if set(spec) not in ({"folder"}, {"glob"}):
            raise SpecError(field, dict(spec), 'give exactly one of "folder" or "glob"')
        if "folder" in spec:
            folder = check_name(spec["folder"], f"{field}.folder", reserved=False)
            if not (root / folder).is_dir():
                raise SpecError(f"{field}.folder", folder, "is not a folder in the task folder")
            matches = [(name, name[len(folder) + 1 :]) for name in _files_below(root, folder)]
        else:
            pattern = check_name(spec["glob"], f"{field}.glob", reserved=False)
            base = _literal_folder(pattern)
            regex = glob_regex(pattern)
            found = _files_below(root, base) if (root / base).is_dir() else iter(())
            matches = [
                (name, name[len(base) + 1 :] if base else name)
                for name in found
                if regex.fullmatch(name)
            ]
            if not matches:
                raise SpecError(f"{field}.glob", pattern, "matches no file in the task folder")
        for path, name in matches:
            if f"{key}/{name}" in expanded:
                raise SpecError(field, f"{key}/{name}", "gives a file another entry gives too")
            expanded[f"{key}/{name}"] = field
            result[f"{key}/{name}"] = {"path": path}
    for name, field in expanded.items():
        if name in files:
            raise SpecError(field, name, "gives a file another entry gives too")
    return result
