"""`Task`: the contents of ``kolejka_task.json``, read strictly and written in the original format.

Unknown keys are errors (a typo must not silently drop a limit). The forms the original accepted
are read unchanged: ``files`` entries as ``{"path": ...}``, ``{"reference": ...}`` or a bare path
string, numbers given as strings, and the legacy top-level ``exec`` and limit keys of the original
README (``{"exec": ["uname"], "memory": "64M", ...}``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .blobs import check_reference
from .errors import SpecError
from .globs import expand_file_sets
from .jsonfile import read_json, write_json
from .limits import Limits
from .names import TASK_SPEC, check_name
from .notify import URL, Notify, parse_notify
from .retry import RetryPolicy
from .units import parse_bool, parse_int, parse_str

_ENV_NAME = re.compile(r"^[^=\x00]+$")


@dataclass(frozen=True)
class FileSpec:
    """Where a file's content is: `path` in the task folder, or `reference` to a server blob."""

    path: str | None = None
    reference: str | None = None

    @classmethod
    def from_value(cls, value: object, field: str) -> FileSpec:
        if isinstance(value, str):
            return cls(path=check_name(value, field, reserved=False))
        if not isinstance(value, Mapping):
            raise SpecError(field, value, 'must be a path string or {"path": ...}')
        if {"folder", "glob"} & set(value):
            raise SpecError(
                field,
                value,
                "folder and glob entries are read from a task folder (kolejka-client, "
                "kolejka-worker), which gives each of their files; send those one by one",
            )
        unknown = set(value) - {"path", "reference"}
        if unknown:
            raise SpecError(f"{field}.{sorted(unknown)[0]}", value, "unknown key in a file entry")
        path, reference = value.get("path"), value.get("reference")
        if (path is None) == (reference is None):
            raise SpecError(field, value, 'must have exactly one of "path" or "reference"')
        if path is not None:
            return cls(path=check_name(path, f"{field}.path", reserved=False))
        return cls(reference=check_reference(reference, f"{field}.reference"))

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path} if self.path is not None else {"reference": str(self.reference)}


@dataclass(frozen=True)
class Collect:
    """Result files to collect from the task folder: `glob`, minus `strip` leading parts, under
    `prefix`."""

    glob: str
    strip: int = 0
    prefix: str = ""

    @classmethod
    def from_value(cls, value: object, field: str) -> Collect:
        if not isinstance(value, Mapping):
            raise SpecError(field, value, 'must be an object like {"glob": "*.txt"}')
        unknown = set(value) - {"glob", "strip", "prefix"}
        if unknown:
            raise SpecError(f"{field}.{sorted(unknown)[0]}", value, "unknown key in collect")
        if "glob" not in value:
            raise SpecError(f"{field}.glob", None, "is required")
        pattern = check_name(value["glob"], f"{field}.glob", reserved=False)
        strip = parse_int(value.get("strip", 0), f"{field}.strip")
        # The original strips slashes around the prefix; so do we, then apply the name rule.
        prefix = parse_str(value.get("prefix", ""), f"{field}.prefix").strip("/")
        if prefix:
            check_name(prefix, f"{field}.prefix", reserved=False)
        return cls(glob=pattern, strip=strip, prefix=prefix)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"glob": self.glob}
        if self.strip:
            result["strip"] = self.strip
        if self.prefix:
            result["prefix"] = self.prefix
        return result


def _str_list(value: object, field: str, *, allow_numbers: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError(field, value, "must be a list of strings")
    items = []
    for index, item in enumerate(value):
        if allow_numbers and isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        text = parse_str(item, f"{field}[{index}]")
        if "\x00" in text:
            raise SpecError(f"{field}[{index}]", text, "must not contain NUL")
        items.append(text)
    return tuple(items)


def _environment(value: object, *, strict: bool) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise SpecError("environment", value, "must be an object of names and values")
    result = {}
    for name, item in value.items():
        if not _ENV_NAME.match(name):
            raise SpecError(f"environment.{name}", name, "is not a valid variable name")
        if isinstance(item, int | float) and not isinstance(item, bool) and not strict:
            item = str(item)
        text = parse_str(item, f"environment.{name}")
        if "\x00" in text:
            raise SpecError(f"environment.{name}", text, "must not contain NUL")
        result[name] = text
    return result


def _files(value: object) -> dict[str, FileSpec]:
    if not isinstance(value, Mapping):
        raise SpecError("files", value, "must be an object of file names")
    result = {}
    for name, spec in value.items():
        check_name(name, f"files.{name}")
        result[name] = FileSpec.from_value(spec, f"files.{name}")
    names = set(result)
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in names:
                raise SpecError(f"files.{name}", name, "is inside another file of the task")
    return result


def _resources(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise SpecError("resources", value, 'must be an object like {"licence": 1}')
    return {
        parse_str(name, "resources"): parse_int(count, f"resources.{name}", minimum=1)
        for name, count in value.items()
    }


# The original README put limits at the top level; `image` there is the task's image, not the
# image-size limit.
_LEGACY_LIMIT_KEYS = frozenset(item.name for item in fields(Limits)) - {"image"}


@dataclass
class Task:
    """A task: run `args` in a container from `image` under `limits`, with `files` in its folder."""

    image: str
    args: tuple[str, ...]
    id: str | None = None
    requires: tuple[str, ...] = ()
    exclusive: bool | None = None
    limits: Limits = field(default_factory=Limits)
    environment: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    files: dict[str, FileSpec] = field(default_factory=dict)
    collect: tuple[Collect, ...] = ()
    callback_url: str | None = None
    resources: dict[str, int] = field(default_factory=dict)
    notify: tuple[Notify, ...] = ()
    retry: RetryPolicy | None = None

    KEYS = frozenset(
        {"id", "image", "args", "requires", "exclusive", "limits", "environment", "stdin"}
        | {"stdout", "stderr", "files", "collect", "callback_url", "resources", "notify", "retry"}
    )

    @classmethod
    def from_dict(cls, data: object, *, strict: bool = False) -> Task:
        """Parse a task object; raise `SpecError` naming the first invalid field.

        Numbers as environment values are written as strings, as the original kolejka read its
        task folders; `strict` refuses them instead (the server's API: a JSON number there is a
        mistake, and ``1e2`` would silently become ``"100.0"``).
        """
        if not isinstance(data, Mapping):
            raise SpecError("task", data, "must be a JSON object")
        data = _normalise_legacy(data)
        unknown = sorted(set(data) - cls.KEYS)
        if unknown:
            raise SpecError(
                unknown[0], data[unknown[0]], f"unknown field; known: {', '.join(sorted(cls.KEYS))}"
            )
        image = parse_str(data.get("image"), "image") if "image" in data else ""
        if not image.strip() or any(char.isspace() for char in image):
            raise SpecError("image", data.get("image"), "must name a docker image")
        args = _str_list(data.get("args"), "args", allow_numbers=True)
        if not args:
            raise SpecError("args", data.get("args"), "must name the program to run")
        files = _files(data.get("files", {}))
        names = {key: data.get(key) for key in ("stdin", "stdout", "stderr")}
        for key, name in names.items():
            if name is not None:
                check_name(name, key)
        if names["stdin"] is not None and names["stdin"] not in files:
            raise SpecError("stdin", names["stdin"], "must be one of the task's files")
        collect = data.get("collect", [])
        if not isinstance(collect, list):
            raise SpecError("collect", collect, "must be a list")
        callback_url = data.get("callback_url")
        if callback_url is not None and not URL.match(parse_str(callback_url, "callback_url")):
            raise SpecError("callback_url", callback_url, "must be an http(s) URL")
        exclusive = data.get("exclusive")
        limits = Limits.from_dict(data.get("limits") or {})
        retry = data.get("retry")
        return cls(
            image=image,
            args=args,
            id=parse_str(data["id"], "id") if data.get("id") is not None else None,
            requires=_str_list(data.get("requires", []), "requires"),
            exclusive=parse_bool(exclusive, "exclusive") if exclusive is not None else None,
            limits=limits,
            environment=_environment(data.get("environment", {}), strict=strict),
            stdin=names["stdin"],
            stdout=names["stdout"],
            stderr=names["stderr"],
            files=files,
            collect=tuple(
                Collect.from_value(item, f"collect[{i}]") for i, item in enumerate(collect)
            ),
            callback_url=callback_url,
            resources=_resources(data.get("resources", {})),
            notify=parse_notify(data.get("notify", [])),
            retry=RetryPolicy.from_dict(retry, memory=limits.memory) if retry is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the task in the original format, leaving out empty optional fields."""
        result: dict[str, Any] = {"image": self.image, "args": list(self.args)}
        optional: dict[str, Any] = {
            "id": self.id,
            "requires": list(self.requires) or None,
            "exclusive": self.exclusive,
            "limits": self.limits.to_dict() or None,
            "environment": dict(self.environment) or None,
            "stdin": self.stdin,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "files": {name: spec.to_dict() for name, spec in self.files.items()} or None,
            "collect": [item.to_dict() for item in self.collect] or None,
            "callback_url": self.callback_url,
            "resources": dict(self.resources) or None,
            "notify": [item.to_dict() for item in self.notify] or None,
            "retry": self.retry.to_dict() if self.retry is not None else None,
        }
        result.update({key: value for key, value in optional.items() if value is not None})
        return result

    @property
    def merged_output(self) -> bool:
        """Whether stdout and stderr go to one file (the same name for both, as the original)."""
        return self.stdout is not None and self.stdout == self.stderr


def _normalise_legacy(data: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite the original README's form (``exec``, limits at the top level) into today's."""
    result = dict(data)
    if "exec" in result:
        if "args" in result:
            raise SpecError(
                "exec", result["exec"], 'give either "exec" (legacy) or "args", not both'
            )
        result["args"] = result.pop("exec")
    legacy_limits = {key: result.pop(key) for key in list(result) if key in _LEGACY_LIMIT_KEYS}
    if legacy_limits:
        limits = result.get("limits") or {}
        if not isinstance(limits, Mapping):
            raise SpecError("limits", limits, "must be an object")
        for key in legacy_limits:
            if key in limits:
                raise SpecError(
                    key, legacy_limits[key], "given both at the top level and in limits"
                )
        result["limits"] = {**limits, **legacy_limits}
    return result


def load_task(folder: str | os.PathLike[str], *, local: bool = True) -> Task:
    """Read and check ``kolejka_task.json`` in `folder`, and its files (`check_task_files`);
    folder and glob entries of its files become one entry per file (`expand_file_sets`)."""
    root = Path(folder)
    if not root.is_dir():
        raise SpecError("task folder", str(root), "is not a directory")
    data = read_json(root / TASK_SPEC, TASK_SPEC)
    if isinstance(data, dict) and "files" in data:
        data["files"] = expand_file_sets(data["files"], root)
    task = Task.from_dict(data)
    check_task_files(task, root, local=local)
    return task


def check_task_files(task: Task, folder: str | os.PathLike[str], *, local: bool = True) -> None:
    """Check that every `path` file of `task` names a regular file under `folder`.

    The names themselves stay inside `folder` (`check_name`); a symlink on the way is followed
    wherever it points, as the original kolejka does (kolejka-judge writes task folders of
    symlinks to the submitter's own files), but it must end at a regular file: not a folder, a
    FIFO (reading it would block) or a device (``/dev/zero`` would fill the workspace). With
    `local`, references to server blobs are refused, since there is no server.
    """
    root = Path(folder)
    for name, spec in task.files.items():
        if spec.path is None:
            if local:
                raise SpecError(f"files.{name}", spec.to_dict(), "a local task has no server blobs")
            continue
        source = root / spec.path
        if not source.is_file():
            broken = source.is_symlink() and not source.exists()
            what = "is a broken symlink" if broken else "is not a file"
            raise SpecError(f"files.{name}.path", spec.path, f"{what} in the task folder")


def save_task(task: Task, folder: str | os.PathLike[str]) -> Path:
    """Write `task` as ``kolejka_task.json`` in `folder` (made if missing); return its path."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / TASK_SPEC
    write_json(path, task.to_dict())
    return path
