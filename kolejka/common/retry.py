"""`RetryPolicy`: when a task whose result is in runs again, by its own rules; `Attempt`: one
attempt as the final result lists it.

A policy is the task's, apart from the platform's retries (a node that failed, a lease that
expired): those re-run a task the platform failed, a policy re-runs a task whose program ended
in a way its owner calls passing (``"on_exit": [75]``, ``"on_verdict": ["TIME_LIMIT"]``), or
that ran out of memory and may have more (``"on_memory_limit": "grow"``: the memory limit
doubled each time, up to ``memory_max``). Neither counts against the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError
from .limits import MAX_SECONDS, MAX_SIZE
from .status import Status
from .units import format_memory, format_time, parse_int, parse_memory, parse_str, parse_time

MAX_RERUNS = 100
MAX_FACTOR = 100.0
GROW = "grow"
# A policy re-runs what the task did: an OK run is done, and a SYSTEM_ERROR is the platform's,
# which retries it on its own (`max_attempts`).
RETRIABLE = tuple(status for status in Status if status not in (Status.OK, Status.SYSTEM_ERROR))


def _duration(value: object, field: str) -> float:
    seconds = parse_time(value, field)
    if seconds > MAX_SECONDS:
        raise SpecError(field, value, f"must be at most {format_time(MAX_SECONDS)}")
    return seconds


@dataclass(frozen=True)
class Backoff:
    """How long the n-th re-run waits: `initial` * `factor` ** (n - 1), at most `max`."""

    initial: float = 0.0
    factor: float = 1.0
    max: float | None = None

    KEYS = frozenset({"initial", "factor", "max"})

    @classmethod
    def from_value(cls, value: object, field: str) -> Backoff:
        """A duration (each re-run waits as long) or ``{"initial", "factor" (default 2),
        "max"}``; `SpecError` naming the field otherwise."""
        if not isinstance(value, Mapping):
            return cls(initial=_duration(value, field))
        unknown = sorted(set(value) - cls.KEYS)
        if unknown:
            known = ", ".join(sorted(cls.KEYS))
            raise SpecError(
                f"{field}.{unknown[0]}", value[unknown[0]], f"unknown key; known: {known}"
            )
        if "initial" not in value:
            raise SpecError(f"{field}.initial", None, "is required")
        initial = _duration(value["initial"], f"{field}.initial")
        factor = value.get("factor", 2)
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise SpecError(f"{field}.factor", factor, "must be a number")
        if not 1 <= factor <= MAX_FACTOR:
            raise SpecError(f"{field}.factor", factor, f"must be from 1 to {MAX_FACTOR:g}")
        most = value.get("max")
        longest = _duration(most, f"{field}.max") if most is not None else None
        if longest is not None and longest < initial:
            raise SpecError(f"{field}.max", most, "must not be shorter than backoff.initial")
        return cls(initial=initial, factor=float(factor), max=longest)

    def to_value(self) -> Any:
        if self.factor == 1 and self.max is None:
            return format_time(self.initial)
        shown: dict[str, Any] = {"initial": format_time(self.initial), "factor": self.factor}
        if self.max is not None:
            shown["max"] = format_time(self.max)
        return shown

    def delay(self, rerun: int) -> float:
        """Seconds the `rerun`-th re-run (1 for the first) waits before a node may take it."""
        seconds = self.initial * self.factor ** max(rerun - 1, 0)
        return min(seconds, self.max if self.max is not None else MAX_SECONDS, MAX_SECONDS)


@dataclass(frozen=True)
class Rerun:
    """What a policy does after an attempt: run again, why, and under which memory limit
    (`memory` None: the one the task has)."""

    why: str
    memory: int | None = None


def _codes(value: object, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(field, value, "must be a non-empty list of exit codes")
    codes = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise SpecError(f"{field}[{index}]", item, "must be a whole number")
        if item == 0 or not -(2**31) <= item < 2**31:
            raise SpecError(f"{field}[{index}]", item, "must be a non-zero exit code")
        codes.append(item)
    return tuple(dict.fromkeys(codes))


def _verdicts(value: object, field: str) -> tuple[Status, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(field, value, "must be a non-empty list of verdicts")
    names = ", ".join(RETRIABLE)
    verdicts = []
    for index, item in enumerate(value):
        if item not in RETRIABLE:
            raise SpecError(f"{field}[{index}]", item, f"must be one of {names}")
        verdicts.append(Status(item))
    return tuple(dict.fromkeys(verdicts))


@dataclass(frozen=True)
class RetryPolicy:
    """Run a task again, at most `max` times, when an attempt ends with an exit code of
    `on_exit` or a verdict of `on_verdict`, or (`on_memory_limit` ``grow``) ran out of memory,
    then with its memory doubled up to `memory_max`. Each re-run waits `backoff`."""

    max: int
    on_exit: tuple[int, ...] = ()
    on_verdict: tuple[Status, ...] = ()
    on_memory_limit: str | None = None
    memory_max: int | None = None
    backoff: Backoff = field(default_factory=Backoff)

    KEYS = frozenset({"max", "on_exit", "on_verdict", "on_memory_limit", "memory_max", "backoff"})

    @classmethod
    def from_dict(
        cls, data: object, field: str = "retry", *, memory: int | None = None
    ) -> RetryPolicy:
        """Parse a ``retry`` object of a task whose memory limit is `memory`; `SpecError`
        naming the first invalid field. It must name something to re-run on, and `max`; a
        `memory_max` goes with ``grow`` and is not below `memory`."""
        if not isinstance(data, Mapping):
            raise SpecError(field, data, 'must be an object like {"on_exit": [75], "max": 2}')
        unknown = sorted(set(data) - cls.KEYS)
        if unknown:
            known = ", ".join(sorted(cls.KEYS))
            raise SpecError(
                f"{field}.{unknown[0]}", data[unknown[0]], f"unknown key; known: {known}"
            )
        if not {"on_exit", "on_verdict", "on_memory_limit"} & set(data):
            raise SpecError(
                field,
                data,
                "names nothing to retry on: give on_exit, on_verdict or on_memory_limit",
            )
        if "max" not in data:
            raise SpecError(
                f"{field}.max", None, f"is required: how many re-runs at most (1 to {MAX_RERUNS})"
            )
        most = parse_int(data["max"], f"{field}.max", minimum=1)
        if most > MAX_RERUNS:
            raise SpecError(f"{field}.max", data["max"], f"must be at most {MAX_RERUNS}")
        grow = data.get("on_memory_limit")
        if grow is not None and grow != GROW:
            raise SpecError(f"{field}.on_memory_limit", grow, f'the one choice is "{GROW}"')
        cap = None
        if data.get("memory_max") is not None:
            if grow is None:
                raise SpecError(
                    f"{field}.memory_max",
                    data["memory_max"],
                    f'goes with "on_memory_limit": "{GROW}"',
                )
            cap = parse_memory(data["memory_max"], f"{field}.memory_max", minimum=1)
            if cap > MAX_SIZE:
                raise SpecError(
                    f"{field}.memory_max",
                    data["memory_max"],
                    f"must be at most {format_memory(MAX_SIZE)}",
                )
            if memory is not None and cap < memory:
                raise SpecError(
                    f"{field}.memory_max",
                    data["memory_max"],
                    f"must not be below the task's limits.memory ({format_memory(memory)})",
                )
        return cls(
            max=most,
            on_exit=_codes(data["on_exit"], f"{field}.on_exit") if "on_exit" in data else (),
            on_verdict=_verdicts(data["on_verdict"], f"{field}.on_verdict")
            if "on_verdict" in data
            else (),
            on_memory_limit=grow,
            memory_max=cap,
            backoff=Backoff.from_value(data["backoff"], f"{field}.backoff")
            if "backoff" in data
            else Backoff(),
        )

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"max": self.max}
        if self.on_exit:
            shown["on_exit"] = list(self.on_exit)
        if self.on_verdict:
            shown["on_verdict"] = [str(verdict) for verdict in self.on_verdict]
        if self.on_memory_limit is not None:
            shown["on_memory_limit"] = self.on_memory_limit
        if self.memory_max is not None:
            shown["memory_max"] = format_memory(self.memory_max)
        if self.backoff != Backoff():
            shown["backoff"] = self.backoff.to_value()
        return shown

    def after(
        self,
        code: int | None,
        status: Status | None,
        memory: int | None,
        ceiling: int | None,
        reruns: int,
    ) -> Rerun | None:
        """Whether an attempt that ended with exit `code` and verdict `status` under the memory
        limit `memory` runs again, after `reruns` re-runs so far; the memory cannot go past
        `ceiling` (the largest node's) either.

        ``grow`` comes first: a MEMORY_LIMIT run goes again with its memory doubled while it can
        grow; at its cap it runs again only if `on_verdict` or `on_exit` say so (at the same
        memory)."""
        if reruns >= self.max:
            return None
        if status == Status.MEMORY_LIMIT and self.on_memory_limit == GROW and memory is not None:
            grown = self.grown(memory, ceiling)
            if grown is not None:
                return Rerun(
                    f"memory limit {format_memory(memory)} hit; grown to {format_memory(grown)}",
                    grown,
                )
        if status is not None and status in self.on_verdict:
            return Rerun(f"verdict {status}")
        if code is not None and code in self.on_exit:
            return Rerun(f"exit code {code}")
        return None

    def grown(self, memory: int, ceiling: int | None) -> int | None:
        """`memory` doubled, capped at `memory_max` and `ceiling`; None if that is no more."""
        limit = 2 * memory
        for cap in (self.memory_max, ceiling):
            if cap is not None:
                limit = min(limit, cap)
        return limit if limit > memory else None


@dataclass
class Attempt:
    """One attempt of a task with a retry policy, as its final result lists them: its number
    (the lease's `attempt`), exit code `result`, verdict `status`, the `memory` limit in force
    and the `memory_peak` it reached, and `retry`: why the policy ran the task again (None for
    the last). Fields this version does not know are kept in `extra`."""

    attempt: int | None = None
    result: int | None = None
    status: Status | None = None
    memory: int | None = None
    memory_peak: int | None = None
    retry: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS = frozenset({"attempt", "result", "status", "memory", "memory_peak", "retry"})

    @classmethod
    def from_dict(cls, data: object, field: str) -> Attempt:
        if not isinstance(data, Mapping):
            raise SpecError(field, data, "must be an object")

        def given(key: str) -> object | None:
            return data.get(key)

        status = given("status")
        if status is not None and status not in Status.__members__:
            raise SpecError(f"{field}.status", status, f"must be one of {', '.join(Status)}")
        number, code = given("attempt"), given("result")
        memory, peak, retry = given("memory"), given("memory_peak"), given("retry")
        return cls(
            attempt=parse_int(number, f"{field}.attempt") if number is not None else None,
            result=parse_int(code, f"{field}.result", minimum=-(2**31))
            if code is not None
            else None,
            status=Status(str(status)) if status is not None else None,
            memory=parse_memory(memory, f"{field}.memory") if memory is not None else None,
            memory_peak=parse_memory(peak, f"{field}.memory_peak") if peak is not None else None,
            retry=parse_str(retry, f"{field}.retry") if retry is not None else None,
            extra={key: value for key, value in data.items() if key not in cls.KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = dict(self.extra)
        shown.update(
            {
                "attempt": self.attempt,
                "result": self.result,
                "status": str(self.status) if self.status is not None else None,
                "memory": format_memory(self.memory) if self.memory is not None else None,
                "memory_peak": format_memory(self.memory_peak)
                if self.memory_peak is not None
                else None,
                "retry": self.retry,
            }
        )
        return shown
