"""A task's deadline without an observer: a small process of its own holds it.

With an observer, the observer kills a task at its deadline (the end of its node's lease less a
margin) by itself. Without one, the task's session lives in the worker's own process, which a
frozen foreman freezes with it; so the worker starts this watchdog, a child process that kills
the task's group at the deadline unless the worker moved it, and at once when the worker's
process dies (its end of the pipe closes without a word). The worker speaks to it one line at a
time: seconds from now to the new deadline, or ``close`` when the session closes normally.

``python -m kolejka.worker.watchdog GROUP SECONDS``
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

KEEP_DEAD = 0.1  # how often a killed group is killed again, for what enters it later


class Watchdog:
    """The watchdog of the group `path` (relative to the cgroup roots), started with deadline
    `at` (`time.monotonic()`)."""

    def __init__(self, path: str, at: float) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kolejka.worker.watchdog", path, repr(at - time.monotonic())],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the foreman's terminal is not for it
        )

    def move(self, at: float) -> None:
        """Move the deadline to `at`."""
        self._say(f"{at - time.monotonic()!r}")

    def close(self) -> None:
        """The session closes normally: the watchdog leaves the group alone and exits."""
        self._say("close")
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        self._process.wait()

    def _say(self, line: str) -> None:
        if self._process.stdin is None or self._process.stdin.closed:
            return
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.write(line.encode() + b"\n")
            self._process.stdin.flush()


def main(argv: Sequence[str] | None = None) -> int:
    from kolejka.observer.cgroups import CgroupError, Hierarchy

    path, seconds = argv or sys.argv[1:]
    for number in (signal.SIGINT, signal.SIGTERM):  # its life is its pipe's
        signal.signal(number, signal.SIG_IGN)
    group = Hierarchy.discover().group(path)
    deadline, killed, pending = time.monotonic() + float(seconds), False, b""
    while True:
        wait = KEEP_DEAD if killed else max(deadline - time.monotonic(), 0.0)
        ready, _, _ = select.select([0], [], [], wait)
        if ready:
            data = os.read(0, 4096)
            if not data:  # the worker's process died without closing the session
                break
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if line.strip() == b"close":
                    return 0
                deadline = time.monotonic() + float(line)
            continue
        if killed or time.monotonic() >= deadline:
            killed = True
            with contextlib.suppress(CgroupError):  # the group may be gone already
                group.kill()
    with contextlib.suppress(CgroupError):
        group.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
