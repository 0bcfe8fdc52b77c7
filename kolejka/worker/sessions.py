"""Opening a task's cgroup session: at the observer when the worker has one, else in-process with
the observer's own `Session` code (the result then says ``accounting: cgroup``)."""

from __future__ import annotations

import functools
import os
import secrets
from typing import TYPE_CHECKING

from kolejka.common import Limits

from .config import WorkerConfig

if TYPE_CHECKING:
    from kolejka.observer.cgroups import Hierarchy

    from .run import SessionHandle


@functools.cache
def _hierarchy() -> Hierarchy:
    from kolejka.observer.cgroups import Hierarchy

    return Hierarchy.discover()


def open_session(
    config: WorkerConfig, limits: Limits, cores: tuple[int, ...], uid: int
) -> tuple[SessionHandle, str | None]:
    """Open the session of one task pinned to `cores`; return it and, with an observer, the path
    of the session's own socket (to mount into the container; connections need uid `uid`)."""
    wanted = limits.session_part()
    if config.observer:
        from kolejka.observer.client import ObserverClient

        remote = ObserverClient(config.observer).open(
            wanted, cpuset=cores, container=True, socket_owner=uid
        )
        return remote, remote.socket
    from kolejka.observer.sessions import Session

    # The worker's pid in the name lets `sweep` tell a dead worker's group from a live one.
    group = _hierarchy().group(f"{config.cgroup_base}/{os.getpid()}-{secrets.token_hex(6)}")
    return Session(group, wanted, cpuset=cores, container=True), None
