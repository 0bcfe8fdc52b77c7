"""Owners of sessions: the processes that opened them. A session whose owner is gone (a worker
killed by SIGKILL, a foreman that crashed) is closed by the observer itself, at once, instead of
holding its cgroup and its task's processes until the observer restarts.

Each owner is watched through a pidfd, so its exit is an event (no polling), and a pid reused by
another process is never mistaken for the owner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Owners:
    """Calls `gone(session_id)` for each session whose owner exited. One thread; thread-safe."""

    def __init__(self, gone: Callable[[str], None]) -> None:
        self._gone = gone
        self._lock = threading.Lock()
        self._poll = select.poll()
        self._fds: dict[int, tuple[int, set[str]]] = {}  # pidfd -> (pid, session ids)
        self._by_pid: dict[int, int] = {}  # pid -> pidfd
        self._wake_r, self._wake_w = os.pipe()
        self._poll.register(self._wake_r, select.POLLIN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="session-owners", daemon=True)
        self._thread.start()

    def watch(self, pid: int, session_id: str) -> bool:
        """Close `session_id` once process `pid` exits; `False` if it already has."""
        with self._lock:
            fd = self._by_pid.get(pid)
            if fd is None:
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    return False
                self._by_pid[pid] = fd
                self._fds[fd] = (pid, set())
                self._poll.register(fd, select.POLLIN)
            self._fds[fd][1].add(session_id)
        os.write(self._wake_w, b"x")
        return True

    def forget(self, session_id: str) -> None:
        """Stop watching for `session_id` (it was closed by its owner)."""
        with self._lock:
            for fd, (_, sessions) in list(self._fds.items()):
                sessions.discard(session_id)
                if not sessions:
                    self._drop(fd)

    def _drop(self, fd: int) -> None:
        pid, _ = self._fds.pop(fd)
        self._by_pid.pop(pid, None)
        self._poll.unregister(fd)
        os.close(fd)

    def _run(self) -> None:
        while True:
            events = self._poll.poll()
            with self._lock:
                if self._stopping:
                    return
                orphans: list[tuple[int, set[str]]] = []
                for fd, _ in events:
                    if fd == self._wake_r:
                        os.read(self._wake_r, 4096)
                    elif fd in self._fds:
                        orphans.append(self._fds[fd])
                        self._drop(fd)
            for pid, sessions in orphans:
                for session_id in sorted(sessions):
                    log.warning(
                        "the owner (pid %d) of session %s is gone: closing it", pid, session_id
                    )
                    try:
                        self._gone(session_id)
                    except Exception:  # one session's failure must not stop the watch
                        log.exception("cannot close session %s", session_id)

    def close(self) -> None:
        with self._lock:
            self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join()
        with self._lock:
            for fd in list(self._fds):
                self._drop(fd)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
