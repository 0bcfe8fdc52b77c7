"""Reservations and backfill: a wide task first in line is not starved by a stream of narrow ones.

When the first task in line for a node (by the claim's order: priority, fair share, age) fits the
node but not what is free on it now, the node is reserved for it, as Slurm reserves for its top
job. From the time limits of the tasks running there (each ends by its start, its ``time`` and
`KOLEJKA_OVERRUN`), the claim works out `Plan.start`, the latest moment enough of them will
have ended for the wide task to start. Until it starts, a later task may take free cores only
if it does not delay that moment (backfill):

- it ends by `Plan.start` (its own time limit says so), or
- it fits in what the wide task leaves free at `Plan.start` (`Plan.leftover`).

A task with no time limit (neither its own nor the node's default) has no bound: while one runs,
the start is not known, and only tasks that fit in what the wide task will not need are started
beside it. So the wide task waits at most until `Plan.start` (plus up to one claim wait of its
foreman), however many narrow tasks are submitted meanwhile.

One node holds a task at a time: the node that reserved it writes itself into the task's row
with a conditional update (the database decides between two nodes reserving at once); other
nodes pass over a task held elsewhere while `reserved_until` is ahead (the holding node renews
it at each claim), and take it at once if it fits what they have free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet

from kolejka.common import Capacity, Demand, Limits
from kolejka.common import Task as TaskSpec

from .models import Node, State, Task


def ends_by(spec: TaskSpec, defaults: Limits, since: datetime) -> datetime | None:
    """The latest a task started at `since` holds its node, by its time limit; `None`: no limit."""
    time = spec.limits.with_defaults(defaults).time
    if time is None:
        return None
    return since + timedelta(seconds=time + float(settings.OVERRUN))


@dataclass(frozen=True)
class Plan:
    """The reservation of one node for task `task_id`: it starts by `start` (`None`: not known,
    a task without a time limit runs), and `leftover` is free beside it then."""

    task_id: int
    start: datetime | None
    leftover: Capacity | None

    def allows(
        self, spec: TaskSpec, demand: Demand, defaults: Limits, tags: frozenset[str], now: datetime
    ) -> bool:
        """Whether a task with `spec` and `demand`, which fits what is free now, may start now
        without delaying the wide one."""
        if self.start is not None:
            end = ends_by(spec, defaults, now)
            # Strictly before: a task assigned but not started yet is taken to start now, as
            # the candidate would, and one of two such equals may still start later.
            if end is not None and end < self.start:
                return True
        if self.leftover is None or demand.exclusive:
            return False
        return demand.misfit(self.leftover, tags, idle=False) is None


def plan(
    node: Node, task_id: int, wide: Demand, free: Capacity, tags: frozenset[str], now: datetime
) -> Plan:
    """When `wide` (task `task_id`) can start on `node`, whose `free` part is too small now:
    the running tasks are taken to end by their time limits, soonest first."""
    capacity = Capacity.from_dict(node.capacity)
    defaults = Limits.from_dict(node.defaults)
    running: list[tuple[datetime | None, Capacity]] = []
    for spec, started in Task.objects.filter(
        lease__node=node, lease__ended=None, state__in=(State.ASSIGNED, State.RUNNING)
    ).values_list("spec", "started"):
        task = TaskSpec.from_dict(spec)
        booked = Demand.of(task, defaults).clamped(capacity.cpus).booking(capacity)
        # Not started yet: it starts no earlier than now.
        running.append((ends_by(task, defaults, started or now), booked))
    running.sort(key=lambda item: (item[0] is None, item[0] or now))
    available = free
    for index, (end, booked) in enumerate(running):
        if end is None:
            return Plan(task_id, None, None)
        available = available.plus(booked)
        idle = index == len(running) - 1
        if wide.misfit(available, tags, idle=idle) is None:
            return Plan(task_id, end, available.minus(wide.booking(capacity)))
    return Plan(task_id, None, None)


def held_elsewhere(
    node: Node, reserved_node_id: int | None, until: datetime | None, now: datetime
) -> bool:
    """Whether a task whose row says (`reserved_node_id`, `until`) is held by another node."""
    return reserved_node_id not in (None, node.pk) and until is not None and until > now


def _unlocked(rows: QuerySet[Task]) -> list[int]:
    """The ids of `rows`, locked for this claim; on PostgreSQL rows another transaction holds
    (a claim taking or holding the task) are skipped, never waited for, so that two claims
    never wait on each other."""
    if connection.vendor == "postgresql":
        rows = rows.select_for_update(skip_locked=True, of=("self",))
    return list(rows.values_list("id", flat=True))


def hold(node: Node, found: Plan, now: datetime) -> bool:
    """Reserve `node` for task `found.task_id`; `False` if another node holds it.

    Loser of two nodes reserving at once: it finds the row locked by the winner (PostgreSQL) or,
    after the winner's write, held by it (SQLite), changes nothing and passes over the task."""
    # Renewed at each claim of the node; it lapses when the node stops claiming (gone, or too
    # busy to ask), so that another node may hold the task instead.
    until = max(found.start or now, now) + timedelta(seconds=settings.LEASE_TTL)
    free_or_mine = (
        Q(reserved_node__isnull=True)
        | Q(reserved_node=node)
        | Q(reserved_until__isnull=True)
        | Q(reserved_until__lte=now)
    )
    if not _unlocked(Task.objects.filter(free_or_mine, id=found.task_id, state=State.QUEUED)):
        return False
    Task.objects.filter(id=found.task_id).update(
        reserved_node=node, reserved_start=found.start, reserved_until=until
    )
    drop(node, keep=found.task_id)
    return True


def drop(node: Node, keep: int | None = None) -> None:
    """End `node`'s reservations, but for task `keep`'s. One another claim has locked is left
    to lapse by its `reserved_until`."""
    held = Task.objects.filter(reserved_node=node)
    ids = _unlocked(held if keep is None else held.exclude(id=keep))
    if ids:
        Task.objects.filter(id__in=ids).update(**CLEARED)


CLEARED = {"reserved_node": None, "reserved_start": None, "reserved_until": None}
