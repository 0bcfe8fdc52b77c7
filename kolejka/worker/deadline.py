"""`Deadline`: the moment by which a task must be dead unless its owner renews it.

The foreman holds a lease on each task it runs; the server gives the task to another node only
after the lease has expired (and a margin more). So that two copies of a task never run at once,
even when the foreman freezes, the end of the lease (less a margin) travels with the task to the
task's cgroup session, which kills the task at that moment by itself: the observer does not
depend on the foreman being alive. The foreman moves the deadline on each renewed lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Deadline:
    """A moment on `time.monotonic()`'s clock, moved by `extend`, which calls every follower with
    the new moment. Thread-safe."""

    def __init__(self, at: float) -> None:
        self._at = at
        self._lock = threading.Lock()
        self._followers: list[Callable[[float], None]] = []

    @property
    def at(self) -> float:
        return self._at

    def left(self) -> float:
        """Seconds until the deadline (negative once passed)."""
        return self._at - time.monotonic()

    def extend(self, at: float) -> None:
        """Move the deadline to `at` and tell the followers. A follower's failure is logged,
        not raised: the task's own run notices a session it cannot reach."""
        with self._lock:
            self._at = at
            followers = list(self._followers)
        for follower in followers:
            try:
                follower(at)
            except Exception as error:
                log.warning("cannot move a task's deadline: %s", error)

    def follow(self, follower: Callable[[float], None]) -> Callable[[], None]:
        """Call `follower(at)` on every `extend` from now on; return the function that stops it."""
        with self._lock:
            self._followers.append(follower)

        def stop() -> None:
            with self._lock:
                if follower in self._followers:
                    self._followers.remove(follower)

        return stop
