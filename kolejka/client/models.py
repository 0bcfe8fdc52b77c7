"""The server's answers as typed objects. Each keeps the whole answer in `raw`, so a field this
version does not know is not lost (``--json`` prints `raw`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kolejka.common import Result, Task
from kolejka.common.states import TaskState

from .errors import ConnectionFailed


def _document(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConnectionFailed(f"the server's answer for {what} is not a JSON object: {data!r}")
    return data


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class TaskInfo:
    """The task resource: `task` is the submitted spec (files as references), `result` the
    accepted result once the task is `done`."""

    key: str
    state: TaskState
    owner: str | None
    priority: int
    batch: str | None
    attempts: int
    max_attempts: int
    node: str | None
    created: datetime | None
    updated: datetime | None
    started: datetime | None
    finished: datetime | None
    error: str | None
    reason: str | None  # why a queued task waits (its last failure, no node can run it, ...)
    not_before: datetime | None  # no node takes the queued task before (retry spacing, backoff)
    task: Task | None
    result: Result | None
    position: int | None  # its place in its batch, 0 for the first
    history: list[Mapping[str, Any]]  # earlier runs of a task run again in place, oldest first
    raw: Mapping[str, Any] = field(repr=False)
    rank: int = 0  # its place in its owner's own order, higher first
    after: list[Mapping[str, Any]] = field(default_factory=list)  # its dependencies

    @classmethod
    def from_dict(cls, data: object) -> TaskInfo:
        document = _document(data, "a task")
        key = document.get("key")
        if not isinstance(key, str):
            raise ConnectionFailed(f"the server sent a task without a key: {document!r}")
        spec, result = document.get("task"), document.get("result")
        return cls(
            key=key,
            state=TaskState(str(document.get("state"))),
            owner=_str(document.get("owner")),
            priority=_int(document.get("priority")),
            batch=_str(document.get("batch")),
            attempts=_int(document.get("attempts")),
            max_attempts=_int(document.get("max_attempts")),
            node=_str(document.get("node")),
            created=_time(document.get("created")),
            updated=_time(document.get("updated")),
            started=_time(document.get("started")),
            finished=_time(document.get("finished")),
            error=_str(document.get("error")),
            reason=_str(document.get("reason")),
            not_before=_time(document.get("not_before")),
            task=Task.from_dict(spec) if spec is not None else None,
            result=Result.from_dict(result) if result is not None else None,
            position=document.get("position")
            if isinstance(document.get("position"), int)
            else None,
            history=[item for item in document.get("history") or [] if isinstance(item, Mapping)],
            raw=document,
            rank=_int(document.get("rank")),
            after=[item for item in document.get("after") or [] if isinstance(item, Mapping)],
        )


@dataclass
class Batch:
    """A batch submission: its id and its tasks."""

    batch: str
    tasks: list[TaskInfo]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Batch:
        document = _document(data, "a batch")
        tasks = document.get("tasks") or []
        return cls(
            batch=str(document.get("batch")),
            tasks=[TaskInfo.from_dict(item) for item in tasks],
            raw=document,
        )


@dataclass
class BatchProgress:
    """A batch: `state` ``open`` (taking pages, nothing runs) or ``sealed``; its tasks by state
    and, for the done ones, by verdict; when it was sealed and its last task finished."""

    batch: str
    total: int
    states: dict[str, int]
    raw: Mapping[str, Any] = field(repr=False)
    state: str = "sealed"
    owner: str | None = None
    verdicts: dict[str, int] = field(default_factory=dict)
    created: datetime | None = None
    sealed: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None

    @classmethod
    def from_dict(cls, data: object) -> BatchProgress:
        document = _document(data, "a batch")
        states = document.get("states") or {}
        verdicts = document.get("verdicts") or {}
        return cls(
            batch=str(document.get("batch")),
            total=_int(document.get("total")),
            states={str(key): _int(value) for key, value in states.items()},
            raw=document,
            state=str(document.get("state") or "sealed"),
            owner=_str(document.get("owner")),
            verdicts={str(key): _int(value) for key, value in verdicts.items()},
            created=_time(document.get("created")),
            sealed=_time(document.get("sealed")),
            started=_time(document.get("started")),
            finished=_time(document.get("finished")),
        )

    @property
    def final(self) -> int:
        """Tasks done, failed or cancelled."""
        final = {str(state) for state in TaskState if state.final}
        return sum(n for state, n in self.states.items() if state in final)

    @property
    def percent(self) -> float:
        return 100.0 * self.final / self.total if self.total else 0.0

    def elapsed(self, now: datetime) -> float | None:
        """Seconds from sealing to the last task's end (to `now` while tasks remain)."""
        if self.sealed is None:
            return None
        end = self.finished if self.final == self.total and self.finished else now
        return max(0.0, (end - self.sealed).total_seconds())

    def eta(self, now: datetime) -> float | None:
        """Seconds until the last task ends at the rate so far; `None` before any ended."""
        elapsed = self.elapsed(now)
        if elapsed is None or not self.final:
            return None
        return elapsed / self.final * (self.total - self.final)


@dataclass
class Account:
    """Who the client is: `username` and `role`; `token` only right after a login."""

    username: str
    role: str
    token: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Account:
        document = _document(data, "the account")
        return cls(
            username=str(document.get("username")),
            role=str(document.get("role")),
            token=_str(document.get("token")),
            raw=document,
        )


@dataclass
class QueueStats:
    """Task counts by state, nodes with what they run, and the oldest queued task's time."""

    states: dict[str, int]
    nodes: dict[str, Mapping[str, Any]]
    oldest_queued: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> QueueStats:
        document = _document(data, "the queue statistics")
        states = document.get("states") or {}
        nodes = document.get("nodes") or {}
        return cls(
            states={str(key): _int(value) for key, value in states.items()},
            nodes={str(key): value for key, value in nodes.items()},
            oldest_queued=_time(document.get("oldest_queued")),
            raw=document,
        )


@dataclass
class Node:
    """A registered node. `state`: ``up``, ``draining``, ``unhealthy`` or ``down`` (it has not
    called in for a while); `free`: its capacity less what its running tasks take; `busy`: how
    many tasks it runs, of which `running` names those the caller may see."""

    name: str
    state: str
    capacity: Mapping[str, Any]
    free: Mapping[str, Any]
    tags: list[str]
    slots: int
    busy: int
    last_seen: datetime | None
    running: list[str]
    draining: bool
    problems: list[str]  # what its last health check found; empty when healthy
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Node:
        document = _document(data, "a node")
        return cls(
            name=str(document.get("name")),
            state=str(document.get("state") or "-"),
            capacity=document.get("capacity") or {},
            free=document.get("free") or {},
            tags=[str(tag) for tag in document.get("tags") or []],
            slots=_int(document.get("slots"), 1),
            busy=_int(document.get("busy")),
            last_seen=_time(document.get("last_seen")),
            running=[str(key) for key in document.get("running") or []],
            draining=bool(document.get("draining")),
            problems=[str(problem) for problem in document.get("problems") or []],
            raw=document,
        )


@dataclass
class NodeVerdict:
    """Whether one node takes a task at its next claim (`takes`), and if not, `why` not;
    `never`: it could not run the task even idle and healthy."""

    name: str
    state: str
    takes: bool
    never: bool
    why: list[str]

    @classmethod
    def from_dict(cls, data: object) -> NodeVerdict:
        document = _document(data, "a node's verdict")
        return cls(
            name=str(document.get("name")),
            state=str(document.get("state") or "-"),
            takes=bool(document.get("takes")),
            never=bool(document.get("never")),
            why=[str(item) for item in document.get("why") or []],
        )


@dataclass
class Why:
    """Why a task waits: its `position` in its owner's queue (1 is next) of `queued`, and a
    verdict per registered node; `never`: no registered node could ever run it."""

    key: str
    state: TaskState
    node: str | None
    reason: str | None
    position: int | None
    queued: int
    never: bool
    nodes: list[NodeVerdict]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Why:
        document = _document(data, "why a task waits")
        position = document.get("position")
        return cls(
            key=str(document.get("key")),
            state=TaskState(str(document.get("state"))),
            node=_str(document.get("node")),
            reason=_str(document.get("reason")),
            position=position if isinstance(position, int) else None,
            queued=_int(document.get("queued")),
            never=bool(document.get("never")),
            nodes=[NodeVerdict.from_dict(item) for item in document.get("nodes") or []],
            raw=document,
        )


@dataclass
class Delivery:
    """One notification or callback of a task or batch: where (`target`), of what (`event`),
    and how it went: delivered, given up, or tried again at `next_try`."""

    id: str
    channel: str
    target: str
    format: str
    event: str
    attempts: int
    created: datetime | None
    tried: datetime | None
    next_try: datetime | None
    delivered: datetime | None
    gave_up: bool
    last_status: int | None
    last_error: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Delivery:
        document = _document(data, "a delivery")
        return cls(
            id=str(document.get("id")),
            channel=str(document.get("channel")),
            target=str(document.get("target")),
            format=str(document.get("format")),
            event=str(document.get("event")),
            attempts=_int(document.get("attempts")),
            created=_time(document.get("created")),
            tried=_time(document.get("tried")),
            next_try=_time(document.get("next_try")),
            delivered=_time(document.get("delivered")),
            gave_up=bool(document.get("gave_up")),
            last_status=_optional_int(document.get("last_status")),
            last_error=_str(document.get("last_error")),
            raw=document,
        )

    @property
    def outcome(self) -> str:
        """``delivered``, ``gave up`` or ``pending``."""
        return "delivered" if self.delivered else "gave up" if self.gave_up else "pending"


@dataclass
class Lease:
    """A claim on one attempt of a task; renew it by heartbeats before `expires`. The node kills
    its copy `margin` seconds before the lease ends; the server requeues `margin` after."""

    id: str
    expires: datetime | None
    ttl: float
    attempt: int
    margin: float

    @classmethod
    def from_dict(cls, data: object) -> Lease:
        document = _document(data, "a lease")
        ttl, margin = document.get("ttl"), document.get("margin")
        ttl = float(ttl) if isinstance(ttl, int | float) else 0.0
        return cls(
            id=str(document.get("id")),
            expires=_time(document.get("expires")),
            ttl=ttl,
            attempt=_int(document.get("attempt"), 1),
            # A server that does not say: the server's default margin, a twentieth of the lease.
            margin=float(margin) if isinstance(margin, int | float) else ttl / 20,
        )


@dataclass
class Claim:
    """The answer to a claim: a `lease` and its `task`, or neither when no task came in time;
    `claimed`, every (lease, task) it took, the first of them `lease` and `task`.
    `drain` says the node is draining and should take no more tasks."""

    lease: Lease | None
    task: TaskInfo | None
    drain: bool
    raw: Mapping[str, Any] = field(repr=False)
    claimed: list[tuple[Lease, TaskInfo]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: object) -> Claim:
        document = _document(data, "a claim")
        lease, task = document.get("lease"), document.get("task")
        first = [{"lease": lease, "task": task}] if lease and task else []
        return cls(
            lease=Lease.from_dict(lease) if lease else None,
            task=TaskInfo.from_dict(task) if task else None,
            drain=bool(document.get("drain")),
            raw=document,
            # A server older than batch claims answers one task, without `claimed`.
            claimed=claimed_of(document.get("claimed", first)),
        )


def claimed_of(data: object) -> list[tuple[Lease, TaskInfo]]:
    """The ``claimed`` list of a claim's answer (or of a result's): (lease, task) pairs."""
    if not isinstance(data, list):
        raise ConnectionFailed(f"the server's list of claimed tasks is not a list: {data!r}")
    return [
        (Lease.from_dict(one.get("lease")), TaskInfo.from_dict(one.get("task")))
        for one in (_document(item, "a claimed task") for item in data)
    ]


@dataclass
class Heartbeat:
    """A renewed lease: its new `expires`, and `cancel` when the owner cancelled the task."""

    expires: datetime | None
    cancel: bool
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Heartbeat:
        document = _document(data, "a heartbeat")
        return cls(
            expires=_time(document.get("expires")),
            cancel=bool(document.get("cancel")),
            raw=document,
        )


@dataclass
class Image:
    """A docker image stored as a `docker save` tarball blob."""

    name: str
    reference: str
    size: int
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Image:
        document = _document(data, "an image")
        return cls(
            name=str(document.get("name")),
            reference=str(document.get("reference")),
            size=_int(document.get("size")),
            raw=document,
        )


@dataclass
class Schedule:
    """A periodic task: `task` queued as an ordinary task at every tick of `cron` (UTC)."""

    key: str
    cron: str
    paused: bool
    missed: str
    next_run: datetime | None
    runs: int
    last_run: datetime | None
    last_task: str | None
    last_error: str | None
    task: Task | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: object) -> Schedule:
        document = _document(data, "a schedule")
        task = document.get("task")
        return cls(
            key=str(document.get("key")),
            cron=str(document.get("cron")),
            paused=document.get("paused") is True,
            missed=str(document.get("missed")),
            next_run=_time(document.get("next_run")),
            runs=_int(document.get("runs")),
            last_run=_time(document.get("last_run")),
            last_task=_str(document.get("last_task")),
            last_error=_str(document.get("last_error")),
            task=Task.from_dict(task) if isinstance(task, Mapping) else None,
            raw=document,
        )
