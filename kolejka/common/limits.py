"""`Limits`: the resources a task may use, as in the ``limits`` object of ``kolejka_task.json``.

`None` in a field means "not limited here"; the worker fills such fields from the operator's
defaults (`with_defaults`) and caps them by the operator's maxima (`tightened`), so a task that
sets nothing still cannot fill a disk or run forever.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import SpecError
from .units import format_memory, format_time, parse_bool, parse_int, parse_memory, parse_time

# The largest value of each limit that the kernel and docker accept on every node. A task past
# one would fail on every node it reached (the kernel refuses the write) and take nodes offline,
# so `Limits.from_dict` refuses it and the server turns that into a 400 at submission.
MAX_SIZE = 2**60  # 1 EiB: memory + swap, summed for memory.memsw, stay in the kernel's 63 bits
MAX_PIDS = 4 * 1024 * 1024  # PID_MAX_LIMIT on 64-bit kernels: pids.max refuses more (EINVAL)
MAX_CPUS = 8192  # NR_CPUS of the largest x86-64 kernels; the CPU quota is cpus x 100 ms
MAX_GPUS = 1024  # no node has more; a bound so that a typo is an error, not a queued task
MAX_SECONDS = float(2**31 - 1)  # 68 years: what every timer down to a 32-bit time_t holds
_MAXIMA: dict[str, tuple[float, str]] = {
    "cpus": (MAX_CPUS, "the most cores a Linux kernel schedules"),
    "cpus_offset": (MAX_CPUS - 1, "the last core a Linux kernel schedules"),
    "memory": (MAX_SIZE, "the largest memory limit kolejka sets"),
    "swap": (MAX_SIZE, "the largest swap limit kolejka sets"),
    "pids": (MAX_PIDS, "the kernel's pids.max accepts at most this"),
    "time": (MAX_SECONDS, "the longest time limit kolejka sets"),
    "cpu_time": (MAX_SECONDS, "the longest CPU time limit kolejka sets"),
    "storage": (MAX_SIZE, "the largest storage limit kolejka sets"),
    "workspace": (MAX_SIZE, "the largest tmpfs kolejka mounts"),
    "image": (MAX_SIZE, "the largest image size kolejka compares"),
    "gpus": (MAX_GPUS, "the most GPUs kolejka assigns"),
    "gpus_offset": (MAX_GPUS - 1, "the last GPU kolejka assigns"),
    "gpu_memory": (MAX_SIZE, "the largest GPU memory kolejka compares"),
}


def _positive_int(value: object, field: str) -> int:
    return parse_int(value, field, minimum=1)


def _int(value: object, field: str) -> int:
    return parse_int(value, field, minimum=0)


def _positive_size(value: object, field: str) -> int:
    return parse_memory(value, field, minimum=1)


def _size(value: object, field: str) -> int:
    return parse_memory(value, field, minimum=0)


def _positive_time(value: object, field: str) -> float:
    return parse_time(value, field, positive=True)


def _dump_int(value: Any) -> Any:
    return value


def _bounded(key: str, parsed: Any, value: object, field: str) -> Any:
    """`parsed` if it is within the maximum of limit `key`; `SpecError` naming it otherwise."""
    bound = _MAXIMA.get(key)
    if bound is not None and parsed > bound[0]:
        shown = _DUMPERS.get(key, _dump_int)(type(parsed)(bound[0]))
        raise SpecError(f"{field}.{key}", value, f"must be at most {shown} ({bound[1]})")
    return parsed


# Each field: how to parse it and how to write it back the way the original wrote it.
_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "cpus": _positive_int,
    "cpus_offset": _int,
    "memory": _positive_size,
    "swap": _size,
    "pids": _positive_int,
    "time": _positive_time,
    "cpu_time": _positive_time,
    "storage": _positive_size,
    "workspace": _positive_size,
    "image": _positive_size,
    "network": parse_bool,
    "root": parse_bool,
    "gpus": _int,
    "gpus_offset": _int,
    "gpu_memory": _positive_size,
}
_DUMPERS: dict[str, Callable[[Any], Any]] = {
    "memory": format_memory,
    "swap": format_memory,
    "storage": format_memory,
    "workspace": format_memory,
    "image": format_memory,
    "gpu_memory": format_memory,
    "time": format_time,
    "cpu_time": format_time,
}

# The limits an observer session enforces (cgroup accounting and the watchdog); the others are
# the worker's (docker options, disk quotas) or placement's.
SESSION_LIMITS = frozenset({"cpus", "memory", "swap", "pids", "time", "cpu_time"})


@dataclass(frozen=True)
class Limits:
    """Resource limits. Sizes are bytes, durations seconds, `None` means unset."""

    cpus: int | None = None
    cpus_offset: int | None = None
    memory: int | None = None
    swap: int | None = None
    pids: int | None = None
    time: float | None = None
    cpu_time: float | None = None
    storage: int | None = None
    workspace: int | None = None
    image: int | None = None
    network: bool | None = None
    root: bool | None = None
    gpus: int | None = None
    gpus_offset: int | None = None
    gpu_memory: int | None = None

    @classmethod
    def from_dict(cls, data: object, field: str = "limits") -> Limits:
        """Parse a ``limits`` object; raise `SpecError` on an unknown key or an invalid value.

        A JSON ``null`` value leaves the field unset.
        """
        if not isinstance(data, Mapping):
            raise SpecError(field, data, "must be an object")
        values: dict[str, Any] = {}
        for key, value in data.items():
            parser = _PARSERS.get(key)
            if parser is None:
                known = ", ".join(sorted(_PARSERS))
                raise SpecError(f"{field}.{key}", value, f"unknown limit; known limits: {known}")
            if value is not None:
                values[key] = _bounded(key, parser(value, f"{field}.{key}"), value, field)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the set fields as the original wrote them (sizes ``64M``, durations ``1s``)."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                result[item.name] = _DUMPERS.get(item.name, _dump_int)(value)
        return result

    def with_defaults(self, defaults: Limits) -> Limits:
        """Return these limits with every unset field taken from `defaults`."""
        changes = {
            item.name: getattr(defaults, item.name)
            for item in fields(self)
            if getattr(self, item.name) is None
        }
        return dataclasses.replace(self, **changes)

    def session_part(self) -> Limits:
        """The part of these limits a cgroup session enforces (`SESSION_LIMITS`)."""
        return Limits(**{name: getattr(self, name) for name in SESSION_LIMITS})

    def tightened(self, maxima: Limits) -> Limits:
        """Return the field-wise minimum of these limits and `maxima` (unset = unlimited).

        Placement fields (`cpus_offset`, `gpus_offset`) are not limits: `maxima`'s value, when set,
        replaces ours. The flags `network` and `root` are allowed only if both allow them.
        """
        changes: dict[str, Any] = {}
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(maxima, item.name)
            if theirs is None:
                continue
            if mine is None or item.name in ("cpus_offset", "gpus_offset"):
                changes[item.name] = theirs
            else:
                changes[item.name] = min(mine, theirs)
        return dataclasses.replace(self, **changes)
