"""`Result`: the contents of ``kolejka_result.json``.

Results are read leniently so that they round-trip between versions: fields this version does not
know are kept in `extra` and written back unchanged, while the fields it knows are checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import SpecError
from .jsonfile import read_json, write_json
from .limits import Limits
from .names import RESULT_SPEC, check_name
from .retry import Attempt
from .status import Status
from .task import FileSpec
from .units import format_memory, format_time, parse_int, parse_memory, parse_str, parse_time


def _time(value: object, name: str) -> float:
    return parse_time(value, name)


def _size(value: object, name: str) -> int:
    return parse_memory(value, name)


def _count(value: object, name: str) -> int:
    return parse_int(value, name)


def _text(value: object, name: str) -> str:
    return parse_str(value, name)


def _identity(value: Any) -> Any:
    return value


_Parser = tuple[Callable[[object, str], Any], Callable[[Any], Any]]
_TIME: _Parser = (_time, format_time)
_SIZE: _Parser = (_size, format_memory)
_COUNT: _Parser = (_count, _identity)
_TEXT: _Parser = (_text, _identity)

G = TypeVar("G", bound="_Group")


@dataclass
class _Group:
    """A stats object: known fields parsed by `FIELDS`, unknown ones kept in `extra`."""

    FIELDS: ClassVar[dict[str, _Parser]] = {}
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls: type[G], data: object, name: str) -> G:
        if not isinstance(data, Mapping):
            raise SpecError(name, data, "must be an object")
        known = {
            key: cls.FIELDS[key][0](value, f"{name}.{key}")
            for key, value in data.items()
            if key in cls.FIELDS and value is not None
        }
        extra = {key: value for key, value in data.items() if key not in cls.FIELDS}
        return cls(extra=extra, **known)

    def to_dict(self) -> dict[str, Any]:
        result = dict(self.extra)
        for key, (_, dump) in self.FIELDS.items():
            value = getattr(self, key)
            if value is not None:
                result[key] = dump(value)
        return result


@dataclass
class CpuStats(_Group):
    """CPU time used, in seconds: `usage` = `user` + `system`."""

    FIELDS: ClassVar[dict[str, _Parser]] = {"usage": _TIME, "user": _TIME, "system": _TIME}
    usage: float | None = None
    user: float | None = None
    system: float | None = None


@dataclass
class MemoryStats(_Group):
    """Memory in bytes: `max_usage` is the peak; `failures` counts hits of the limit."""

    FIELDS: ClassVar[dict[str, _Parser]] = {
        "usage": _SIZE,
        "max_usage": _SIZE,
        "swap": _SIZE,
        "max_swap": _SIZE,
        "failures": _COUNT,
        "oom_kills": _COUNT,
    }
    usage: int | None = None
    max_usage: int | None = None
    swap: int | None = None
    max_swap: int | None = None
    failures: int | None = None
    oom_kills: int | None = None


@dataclass
class PidsStats(_Group):
    """Processes and threads: `max_usage` is the peak; `failures` counts refused forks."""

    FIELDS: ClassVar[dict[str, _Parser]] = {
        "usage": _COUNT,
        "max_usage": _COUNT,
        "failures": _COUNT,
    }
    usage: int | None = None
    max_usage: int | None = None
    failures: int | None = None


@dataclass
class GpuStats(_Group):
    """One GPU as the original reported it."""

    FIELDS: ClassVar[dict[str, _Parser]] = {
        "name": _TEXT,
        "id": _TEXT,
        "total_memory": _SIZE,
        "memory_usage": _SIZE,
        "max_temperature": _COUNT,
        "max_utilization": _COUNT,
    }
    name: str | None = None
    id: str | None = None
    total_memory: int | None = None
    memory_usage: int | None = None
    max_temperature: int | None = None
    max_utilization: int | None = None


def _group_map(cls: type[G], data: object, name: str) -> dict[str, G]:
    if not isinstance(data, Mapping):
        raise SpecError(name, data, "must be an object")
    return {str(key): cls.from_dict(value, f"{name}.{key}") for key, value in data.items()}


@dataclass
class Stats:
    """What a run used, measured on the host: `cpu`, `memory`, `pids`, wall `time`, `gpus`."""

    cpu: CpuStats = field(default_factory=CpuStats)
    cpus: dict[str, CpuStats] = field(default_factory=dict)
    memory: MemoryStats = field(default_factory=MemoryStats)
    pids: PidsStats = field(default_factory=PidsStats)
    time: float | None = None
    gpus: dict[str, GpuStats] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[frozenset[str]] = frozenset({"cpu", "cpus", "memory", "pids", "time", "gpus"})

    @classmethod
    def from_dict(cls, data: object, name: str = "stats") -> Stats:
        if not isinstance(data, Mapping):
            raise SpecError(name, data, "must be an object")
        time = data.get("time")
        return cls(
            cpu=CpuStats.from_dict(data.get("cpu") or {}, f"{name}.cpu"),
            cpus=_group_map(CpuStats, data.get("cpus") or {}, f"{name}.cpus"),
            memory=MemoryStats.from_dict(data.get("memory") or {}, f"{name}.memory"),
            pids=PidsStats.from_dict(data.get("pids") or {}, f"{name}.pids"),
            time=parse_time(time, f"{name}.time") if time is not None else None,
            gpus=_group_map(GpuStats, data.get("gpus") or {}, f"{name}.gpus"),
            extra={key: value for key, value in data.items() if key not in cls.KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        result = dict(self.extra)
        result["cpu"] = self.cpu.to_dict()
        if self.cpus:
            result["cpus"] = {key: value.to_dict() for key, value in self.cpus.items()}
        result["memory"] = self.memory.to_dict()
        result["pids"] = self.pids.to_dict()
        if self.time is not None:
            result["time"] = format_time(self.time)
        if self.gpus:
            result["gpus"] = {key: value.to_dict() for key, value in self.gpus.items()}
        return result


def _result_files(value: object) -> dict[str, FileSpec]:
    # The original README shows the files of a result as a bare list of names.
    if isinstance(value, list):
        value = {parse_str(name, f"files[{i}]"): {"path": name} for i, name in enumerate(value)}
    if not isinstance(value, Mapping):
        raise SpecError("files", value, "must be an object of file names")
    return {
        check_name(name, f"files.{name}"): FileSpec.from_value(spec, f"files.{name}")
        for name, spec in value.items()
    }


def _limits(value: object) -> tuple[Limits, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise SpecError("limits", value, "must be an object")
    known_names = {item.name for item in fields(Limits)}
    known = {key: item for key, item in value.items() if key in known_names}
    return Limits.from_dict(known), {k: v for k, v in value.items() if k not in known_names}


@dataclass
class Result:
    """The outcome of a run: exit code `result`, verdict `status`, output `files`, `stats`."""

    id: str | None = None
    result: int | None = None
    status: Status | None = None
    error: str | None = None
    accounting: str | None = None
    files: dict[str, FileSpec] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    tags: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    stdout: str | None = None
    stderr: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    extra_limits: dict[str, Any] = field(default_factory=dict)
    # Every attempt of a task with a retry policy, the last one this result's (the server adds it).
    attempts: list[Attempt] = field(default_factory=list)

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"id", "result", "status", "error", "accounting", "files", "limits", "tags", "stats"}
        | {"stdout", "stderr", "return", "attempts"}
    )

    @classmethod
    def from_dict(cls, data: object) -> Result:
        """Parse a result object; raise `SpecError` for a known field with an invalid value."""
        if not isinstance(data, Mapping):
            raise SpecError("result", data, "must be a JSON object")
        code = data.get("result", data.get("return"))
        status = data.get("status")
        if status is not None and status not in Status.__members__:
            raise SpecError("status", status, f"must be one of {', '.join(Status)}")
        tags = data.get("tags") or []
        if not isinstance(tags, list):
            raise SpecError("tags", tags, "must be a list of strings")
        limits, extra_limits = _limits(data.get("limits") or {})
        attempts = data.get("attempts") or []
        if not isinstance(attempts, list):
            raise SpecError("attempts", attempts, "must be a list")
        optional_text = {
            key: parse_str(data[key], key) if data.get(key) is not None else None
            for key in ("id", "error", "accounting")
        }
        outputs = {
            key: check_name(data[key], key) if data.get(key) is not None else None
            for key in ("stdout", "stderr")
        }
        return cls(
            result=parse_int(code, "result", minimum=-(2**31)) if code is not None else None,
            status=Status(status) if status is not None else None,
            files=_result_files(data.get("files") or {}),
            limits=limits,
            tags=[parse_str(tag, f"tags[{index}]") for index, tag in enumerate(tags)],
            stats=Stats.from_dict(data.get("stats") or {}),
            extra={key: value for key, value in data.items() if key not in cls.KEYS},
            extra_limits=extra_limits,
            attempts=[Attempt.from_dict(item, f"attempts[{n}]") for n, item in enumerate(attempts)],
            **optional_text,
            **outputs,
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = dict(self.extra)
        optional = {
            "id": self.id,
            "result": self.result,
            "status": str(self.status) if self.status is not None else None,
            "error": self.error,
            "accounting": self.accounting,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }
        result.update({key: value for key, value in optional.items() if value is not None})
        result["files"] = {name: spec.to_dict() for name, spec in self.files.items()}
        result["limits"] = {**self.extra_limits, **self.limits.to_dict()}
        result["tags"] = list(self.tags)
        result["stats"] = self.stats.to_dict()
        if self.attempts:
            result["attempts"] = [attempt.to_dict() for attempt in self.attempts]
        return result

    def attempt(self, number: int | None, retry: str | None) -> Attempt:
        """This result as attempt `number` of a task with a retry policy; `retry`: why the
        policy runs the task again after it (None if it does not)."""
        return Attempt(
            attempt=number,
            result=self.result,
            status=self.status,
            memory=self.limits.memory,
            memory_peak=self.stats.memory.max_usage,
            retry=retry,
        )


def load_result(folder: str | os.PathLike[str]) -> Result:
    """Read ``kolejka_result.json`` from `folder`."""
    return Result.from_dict(read_json(Path(folder) / RESULT_SPEC, RESULT_SPEC))


def save_result(result: Result, folder: str | os.PathLike[str]) -> Path:
    """Write `result` as ``kolejka_result.json`` in `folder` (made if missing); return its path."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / RESULT_SPEC
    write_json(path, result.to_dict())
    return path
