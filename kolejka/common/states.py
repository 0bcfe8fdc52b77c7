"""The states of a task on the server, as the API names them; the server, the client and the
command line read them from here."""

from __future__ import annotations

import enum


class TaskState(enum.StrEnum):
    """Where a task is in its life: ``waiting`` for its dependencies (``after``, no claim sees
    it) → ``queued`` → ``assigned`` (claimed) → ``running`` → ``done`` or ``failed``, or
    ``cancelled`` by its owner before it is final (or because a dependency can no longer be met).
    """

    WAITING = "waiting"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """No transition leaves this state by itself (only a retry or a rejudge does)."""
        return self in FINAL

    @property
    def active(self) -> bool:
        """A node holds the task under a lease."""
        return self in ACTIVE


ACTIVE = frozenset({TaskState.ASSIGNED, TaskState.RUNNING})
FINAL = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED})
