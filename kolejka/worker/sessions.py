"""Opening a task's cgroup session: at the observer when the worker has one, else in-process with
the observer's own `Session` code (the result then says ``accounting: cgroup``), whose deadline a
`Watchdog` process also holds."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from typing import TYPE_CHECKING

from kolejka.common import Limits

from .config import WorkerConfig

if TYPE_CHECKING:
    from kolejka.observer.cgroups import Hierarchy
    from kolejka.observer.sessions import Reason, Report, Session

    from .run import SessionHandle
    from .watchdog import Watchdog


@functools.cache
def _hierarchy() -> Hierarchy:
    from kolejka.observer.cgroups import Hierarchy

    return Hierarchy.discover()


def open_session(
    config: WorkerConfig,
    limits: Limits,
    cores: tuple[int, ...],
    uid: int,
    deadline: float | None = None,
) -> tuple[SessionHandle, str | None]:
    """Open the session of one task pinned to `cores`, killed at `deadline` (monotonic) unless
    it is moved; return it and, with an observer, the path of the session's own socket (to mount
    into the container; connections need uid `uid`)."""
    wanted = limits.session_part()
    if config.observer:
        from kolejka.observer.client import ObserverClient

        remote = ObserverClient(config.observer).open(
            wanted, cpuset=cores, container=True, socket_owner=uid, deadline=deadline
        )
        return remote, remote.socket
    from kolejka.observer.sessions import Session

    group = _hierarchy().group(f"{config.cgroup_base}/{group_prefix(config)}{secrets.token_hex(6)}")
    session = Session(group, wanted, cpuset=cores, container=True)
    if deadline is None:
        return session, None
    from .watchdog import Watchdog

    session.set_deadline(deadline)
    try:
        return Guarded(session, Watchdog(group.path, deadline)), None
    except OSError:
        session.close()
        raise


class Guarded:
    """An in-process session whose deadline a watchdog process holds as well: the session's
    own watcher is frozen with a frozen foreman, the watchdog is not."""

    def __init__(self, session: Session, watchdog: Watchdog) -> None:
        self.session = session
        self.watchdog = watchdog

    @property
    def cgroup_parent(self) -> str:
        return self.session.cgroup_parent

    def kill(self, reason: Reason) -> None:
        self.session.kill(reason)

    def set_deadline(self, at: float | None) -> None:
        self.session.set_deadline(at)
        if at is not None:
            self.watchdog.move(at)

    def report(self) -> Report:
        return self.session.report()

    def close(self) -> Report:
        self.watchdog.close()
        return self.session.close()


def owner_tag(owner: str) -> str:
    """A short name-safe tag of the foreman identity `owner` (a node name and a path)."""
    return "o" + hashlib.sha256(owner.encode()).hexdigest()[:12]


def group_prefix(config: WorkerConfig) -> str:
    """How the names of the groups this worker makes (without an observer) begin: the owner's
    tag, if any, then the worker's pid, so that `sweep` tells its own and a dead worker's."""
    owner = f"{owner_tag(config.owner)}-" if config.owner is not None else ""
    return f"{owner}{os.getpid()}-"
