"""The original kolejka's in-task observer protocol, served on a session's own socket.

kolejka-judge (through ``kolejka.observer.runner`` of the original) runs each solution like this,
on the socket at ``/var/run/kolejka/observer/socket`` (the worker mounts the session's socket
there too):

1. ``POST /open`` ``{}`` → ``{"session_id": ID, "secret": S, "status": "ok"}``;
2. ``POST /limits`` ``{"limits": {"cpus": 1, "memory": "268435456b", "swap": "0b", "pids": 64,
   "time": "2.0s"}, "session_id": ID, "secret": S}`` → ``{"status": "ok"}``;
3. the child, still root, sends ``POST /attach`` with the open answer as its body, then drops
   to the solution's user and executes it;
4. ``POST /stats`` → the original's stats document (``cpu``, ``cpus``, ``memory``, ``pids``,
   ``time``, sizes as ``123b`` and durations as ``0.5s``) and ``"status": "ok"``;
5. ``POST /close`` → ``{"status": "ok"}``.

Each verb is one of our nested sessions' (docs/observer.md): a session is opened inside the
innermost session the caller runs in, so its limits are at most the caller's own; a process may
attach only to a session nested in the one it runs in (never sideways or out); only the
sessions of this socket's task can be named, and a wrong id or secret is ``403``, as in the
original. Unknown limits (``cpus_offset``, ``perf_*``, ``cgroup_*``) are ignored as the original
ignores what it cannot apply. ``detach``, ``freeze`` and ``thaw``, which kolejka-judge never
calls, are refused with ``501``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kolejka.common import Limits, SpecError, Stats

from .cgroups import CgroupError, group_of
from .registry import TooMany, innermost, is_within
from .sessions import Reason, Report, Session

if TYPE_CHECKING:
    from .server import Observer

VERBS = frozenset({"", "open", "attach", "limits", "stats", "close", "kill"})
REFUSED = frozenset({"detach", "freeze", "thaw"})
# What the original's session applies; its other limits are ignored there too.
APPLIED_LIMITS = ("cpus", "memory", "swap", "pids", "time")


class LegacyError(Exception):
    """An answer with an error status, in the original's shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handles(method: str, path: str) -> bool:
    """Whether a request on a session's socket is the original's protocol."""
    return method == "POST" and _verb(path) in VERBS | REFUSED


def _verb(path: str) -> str:
    return path.split("?", 1)[0].strip("/ ").lower()


def route(
    observer: Observer, scope: Session, pid: int, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Answer one request of the original's protocol from process `pid` of `scope`'s task."""
    verb = _verb(path)
    try:
        if verb in REFUSED:
            raise LegacyError(501, f"{verb} is not supported by kolejka's observer")
        return 200, {**_VERBS[verb](_Call(observer, scope, pid, body)), "status": "ok"}
    except LegacyError as error:
        return error.status, {"status": "error", "error": str(error)}
    except TooMany as error:  # the caps of our protocol, in the original's shape
        return 429, {"status": "error", "error": str(error)}
    except CgroupError as error:  # e.g. a memory limit below what the session uses already
        return 409, {"status": "error", "error": str(error)}


class _Call:
    def __init__(self, observer: Observer, scope: Session, pid: int, body: dict[str, Any]) -> None:
        self.observer = observer
        self.scope = scope
        self.pid = pid
        self.body = body

    def innermost(self) -> Session:
        """The deepest session of this task the caller runs in."""
        return innermost(self.scope, group_of(self.pid, self.observer.hierarchy))

    def session(self) -> Session:
        """The open session the body names (within this task, not the task's own)."""
        session_id, secret = self.body.get("session_id"), self.body.get("secret")
        found = self.observer.registry.find(str(session_id), str(secret))
        if found is None or found is self.scope or not is_within(found, self.scope):
            raise LegacyError(403, "no such session, or a wrong secret")
        return found

    def final(self) -> Report | None:
        """The final report of a closed session the body names, within this task."""
        session_id, secret = self.body.get("session_id"), self.body.get("secret")
        return self.observer.registry.final(str(session_id), str(secret), within=self.scope)

    def open(self) -> Session:
        return self.observer.registry.open(Limits(), container=False, parent=self.innermost())


def _root(call: _Call) -> dict[str, Any]:
    return {"sessions": sum(1 for _ in _nested(call.scope))}


def _nested(session: Session) -> Any:
    for child in list(session.children.values()):
        yield child
        yield from _nested(child)


def _open(call: _Call) -> dict[str, Any]:
    session = call.open()
    return {"session_id": session.id, "secret": session.secret}


def _attach(call: _Call) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    if "session_id" in call.body:
        session = call.session()
    else:  # the original opens one for the caller
        session = call.open()
        answer = {"session_id": session.id, "secret": session.secret}
    if session is call.innermost() or not is_within(session, call.innermost()):
        raise LegacyError(403, "a process may attach only to a session nested in its own")
    session.attach(call.pid)
    return answer


def _limits(call: _Call) -> dict[str, Any]:
    session = call.session()
    given = call.body.get("limits") or {}
    if not isinstance(given, dict):
        raise LegacyError(400, "limits must be an object")
    try:
        limits = Limits.from_dict({k: v for k, v in given.items() if k in APPLIED_LIMITS})
    except SpecError as error:
        raise LegacyError(400, str(error)) from None
    session.set_limits(limits)
    return {}


def _stats(call: _Call) -> dict[str, Any]:
    try:
        report = call.session().report()
    except LegacyError:
        final = call.final()
        if final is None:
            raise
        report = final
    return legacy_stats(report.stats)


def _close(call: _Call) -> dict[str, Any]:
    try:
        session = call.session()
    except LegacyError:
        if call.final() is None:
            raise
        return {}  # close is idempotent
    call.observer.registry.close(session)
    return {}


def _kill(call: _Call) -> dict[str, Any]:
    call.session().kill(Reason.CANCEL)
    return {}


_VERBS: dict[str, Callable[[_Call], dict[str, Any]]] = {
    "": _root,
    "open": _open,
    "attach": _attach,
    "limits": _limits,
    "stats": _stats,
    "close": _close,
    "kill": _kill,
}


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{float(value)!r}s"


def _bytes(value: int | None) -> str | None:
    return None if value is None else f"{int(value)}b"


def _group(**values: object) -> dict[str, object]:
    return {key: value for key, value in values.items() if value is not None}


def legacy_stats(stats: Stats) -> dict[str, Any]:
    """`stats` in the original's ``KolejkaStats.dump()`` shape (``0.5s``, ``1024b``)."""
    cpu, memory, pids = stats.cpu, stats.memory, stats.pids
    return {
        "cpu": _group(
            usage=_seconds(cpu.usage), user=_seconds(cpu.user), system=_seconds(cpu.system)
        ),
        "cpus": {key: _group(usage=_seconds(value.usage)) for key, value in stats.cpus.items()},
        "memory": _group(
            usage=_bytes(memory.usage),
            max_usage=_bytes(memory.max_usage),
            swap=_bytes(memory.swap),
            max_swap=_bytes(memory.max_swap),
            failures=memory.failures,
        ),
        "pids": _group(usage=pids.usage, max_usage=pids.max_usage, failures=pids.failures),
        "perf": {},
        **({"time": _seconds(stats.time)} if stats.time is not None else {}),
        "gpus": {},
    }
