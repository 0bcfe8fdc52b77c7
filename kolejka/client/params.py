"""Task arrays: one task folder as a template, and a table of parameters, one row a task.

A row is a mapping of names to values; ``{name}`` in the template's `args`, `environment`
values, file names and paths, `stdin`, `stdout`, `stderr` and `id` is replaced by the row's
value (``{{`` and ``}}`` stand for braces). Rows come from a JSON list of objects, a YAML list
of mappings, a CSV file with a header line, a JSON-lines file (by its suffix: ``.json``,
``.yaml`` / ``.yml``, ``.csv``, ``.jsonl`` / ``.ndjson``), or a range of numbers, ``{i}``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kolejka.common import TASK_SPEC, SpecError, Task, check_task_files
from kolejka.common.globs import expand_file_sets

from .errors import ClientError

Row = Mapping[str, str]
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
SUFFIXES = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class ParamsError(ClientError):
    """A parameters file or range cannot be read as rows of a task array; the message names
    the file and the row."""


def _value(value: object, where: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise ParamsError(f"{where}: a value must be a string or a number (got {value!r})")
    return str(value)


def _mapping(item: object, where: str) -> dict[str, str]:
    if not isinstance(item, Mapping) or not item:
        raise ParamsError(f"{where}: a row must be an object of names and values")
    return {str(key): _value(value, f"{where}.{key}") for key, value in item.items()}


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the parameters file at `path`. Raises `ParamsError` naming the file (and the
    line or row) for a file that is missing, of an unknown kind, malformed, or empty."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(SUFFIXES)
        raise ParamsError(f"{path}: unknown kind of parameters file; name it {known}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ParamsError(f"{path}: cannot read it: {reason}") from None
    rows = _parse(text, kind, path)
    if not rows:
        raise ParamsError(f"{path}: holds no rows")
    return rows


def _parse(text: str, kind: str, path: Path) -> list[dict[str, str]]:
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ParamsError(f"{path}: line {number}: not JSON: {error.msg}") from None
            rows.append(_mapping(item, f"{path}: line {number}"))
        return rows
    if kind == "csv":
        reader = csv.DictReader(text.splitlines(), strict=True)
        try:
            items = list(reader)
        except csv.Error as error:
            raise ParamsError(f"{path}: line {reader.line_num}: {error}") from None
        header = reader.fieldnames or []
        if any(not name for name in header) or len(set(header)) != len(header):
            raise ParamsError(f"{path}: line 1: the header needs distinct, non-empty names")
        for number, item in enumerate(items, 2):
            if None in item or any(value is None for value in item.values()):
                raise ParamsError(f"{path}: line {number}: has not as many values as the header")
        return [dict(item) for item in items]
    document: Any
    if kind == "json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ParamsError(f"{path}: line {error.lineno}: not JSON: {error.msg}") from None
    else:
        import yaml  # ~9 ms: imported for the files that are YAML only

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(error, "problem", error)
            raise ParamsError(f"{path}: {where}not YAML: {problem}") from None
    if not isinstance(document, list):
        raise ParamsError(f"{path}: must hold a list of rows")
    return [_mapping(item, f"{path}: row {index}") for index, item in enumerate(document)]


def range_rows(text: str) -> list[dict[str, str]]:
    """The rows ``{"i": "A"}`` ... ``{"i": "B"}`` of ``A-B`` (both included)."""
    match = re.fullmatch(r"(\d+)-(\d+)", text.strip())
    if match is None or int(match[1]) > int(match[2]):
        raise ParamsError(
            f"--range: must be FIRST-LAST with FIRST <= LAST, e.g. 1-2000 (got {text!r})"
        )
    return [{"i": str(n)} for n in range(int(match[1]), int(match[2]) + 1)]


def fill(text: str, row: Row, where: str) -> str:
    """`text` with the placeholders of `row` filled; `ParamsError` naming `where` for a name
    the row does not have."""

    def value(match: re.Match[str]) -> str:
        token = match[0]
        if token in ("{{", "}}"):
            return token[0]
        name = match[1]
        if name not in row:
            known = ", ".join(sorted(row)) or "none"
            raise ParamsError(f"{where}: {{{name}}} names no parameter (known: {known})")
        return row[name]

    return PLACEHOLDER.sub(value, text)


class Template:
    """A task folder whose ``kolejka_task.json`` holds placeholders; `task(row)` is its task
    for one row, with its files checked in the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if not folder.is_dir():
            raise SpecError("task folder", str(folder), "is not a directory")
        path = folder / TASK_SPEC
        try:
            self.document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise SpecError(TASK_SPEC, str(path), f"cannot read it: {error.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SpecError(TASK_SPEC, str(path), f"is not JSON: {error}") from None
        if not isinstance(self.document, dict):
            raise SpecError(TASK_SPEC, str(path), "must be a JSON object")

    def filled(self, row: Row, where: str) -> dict[str, Any]:
        """The task document with `row`'s values in place."""
        document = dict(self.document)
        for key in ("stdin", "stdout", "stderr", "id"):
            if isinstance(document.get(key), str):
                document[key] = fill(document[key], row, f"{where}: {key}")
        for key in ("args", "exec"):
            if isinstance(document.get(key), list):
                document[key] = [
                    fill(arg, row, f"{where}: {key}[{n}]") if isinstance(arg, str) else arg
                    for n, arg in enumerate(document[key])
                ]
        if isinstance(document.get("environment"), dict):
            document["environment"] = {
                name: fill(value, row, f"{where}: environment.{name}")
                if isinstance(value, str)
                else value
                for name, value in document["environment"].items()
            }
        if isinstance(document.get("files"), dict):
            document["files"] = {
                fill(name, row, f"{where}: files"): _fill_file(spec, row, f"{where}: files.{name}")
                for name, spec in document["files"].items()
            }
        return document

    def task(self, row: Row, where: str) -> Task:
        """The task of `row`; `ParamsError` or `SpecError` (naming `where`) when invalid."""
        document = self.filled(row, where)
        if "files" in document:
            document["files"] = expand_file_sets(document["files"], self.folder)
        try:
            task = Task.from_dict(document)
            check_task_files(task, self.folder, local=False)
        except SpecError as error:
            setattr(error, "subject", where)  # noqa: B010 - SpecError does not declare it
            raise
        return task


def _fill_file(spec: object, row: Row, where: str) -> object:
    if isinstance(spec, str):
        return fill(spec, row, where)
    if isinstance(spec, dict) and isinstance(spec.get("path"), str):
        return {**spec, "path": fill(spec["path"], row, f"{where}.path")}
    return spec


def tasks(template: Template, rows: list[dict[str, str]]) -> Iterator[Task]:
    """The task of each row, in order (a row is named ``row N``, 0 for the first)."""
    for index, row in enumerate(rows):
        yield template.task(row, f"row {index}")
