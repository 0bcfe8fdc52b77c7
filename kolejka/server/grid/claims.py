"""Claims: which queued task a node gets, decided by the database so that no task goes twice.

Order: the highest priority first; within a priority the owner with the fewest tasks running
(fair share); then the oldest task, except that each owner's own tasks take the places their
owner's tasks hold in that order in the owner's own order (`rank`, highest first; then age):
an owner reorders their own tasks, never gets one ahead of another owner's. Waiting tasks
(`dependencies.py`) are not queued: no claim reads them. The claim visits queues from the
`Backlog` table (one row per owner and priority) and reads a bounded window of each queue
through a partial index, pre-filtered in SQL by the numeric resources; `Demand.misfit` has the
final word. So the cost of a claim depends on the number of owners waiting, not on the depth of
the queue, and a task that fits no node is passed over instead of blocking the ones behind it.
A task that fits the node but not its free part, first in line, reserves the node: the tasks
after it start only if they do not delay it (`reservations.py`). A task asking more cpus than
any registered node has asks the largest node's cores (`Demand.clamped`).

The winner of a race takes the row in one locked statement: ``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL (a loser skips the row another claim holds and tries its next candidate), and an
immediate transaction on SQLite (a loser waits for the write lock, then finds the row no longer
queued and tries its next candidate).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, Max, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits, SpecError
from kolejka.common import Task as TaskSpec

from . import backlog, nodes, reservations, retries, transitions, wakeup
from .models import ACTIVE, Backlog, Lease, Node, State, Task

# Rows read from one owner's queue per look, and in all per claim: what bounds a claim's cost
# when many queued tasks pass the SQL pre-filter but not `Demand.misfit` (e.g. required tags).
WINDOW = 16
OWNER_BUDGET = 256
CLAIM_BUDGET = 4096
# Owners of one fair-share tier looked at one by one; a larger tier is read in one query.
SMALL_TIER = 16
CANDIDATE_FIELDS = (
    "id", "owner_id", "priority", "spec", "reserved_node_id", "reserved_until", "rank"
)  # fmt: skip
Row = tuple[int, int, int, object, int | None, datetime | None, int]


@dataclass(frozen=True)
class Candidate:
    id: int
    owner_id: int
    priority: int
    spec: TaskSpec


@dataclass(frozen=True)
class Claimed:
    lease: Lease
    task: Task


def _cpus(column: str, room: int, node_cpus: int, largest: int, default: int) -> Q:
    """Tasks whose cpus fit `room` cores; one asking more than `largest` (the most any node
    has) takes `largest` (`Demand.clamped`), which only a node that large can give."""
    fits = Q(**{f"{column}__lte": room})
    if node_cpus >= largest and room >= largest:
        fits |= Q(**{f"{column}__gt": largest})
    if min(default, largest) <= room:
        fits |= Q(**{f"{column}__isnull": True})
    return fits


def _prefilter(
    room: Capacity, node_cpus: int, largest: int, defaults: Limits, tags: frozenset[str], idle: bool
) -> Q:
    """Tasks that may fit `room`, judged by the columns SQL can compare."""
    query = _cpus("need_cpus", room.cpus, node_cpus, largest, defaults.cpus or 1)
    for column, available, default in (
        ("need_memory", room.memory, defaults.memory or 0),
        ("need_gpus", room.gpus, defaults.gpus or 0),
        ("need_workspace", room.workspace, defaults.workspace or 0),
    ):
        fits = Q(**{f"{column}__lte": available})
        if default <= available:
            fits |= Q(**{f"{column}__isnull": True})
        query &= fits
    if not idle:
        query &= Q(exclusive=False)
    if not tags and not any(count > 0 for count in room.resources.values()):
        query &= Q(labelled=False)
    return query


def _wanted() -> int:
    """Candidates worth finding per queue: on SQLite the claim holds the write lock, so the first
    is sure to be free; on PostgreSQL a few spares for the ones concurrent claims take."""
    return 8 if connection.vendor == "postgresql" else 1


@dataclass(frozen=True)
class _Entry:
    """A queued task as a claim reads it: its row, spec, demand, and whether it fits now."""

    row: Row
    spec: TaskSpec
    demand: Demand
    fits: bool


class _Walk:
    """One claim's walk down the queue for `node`, which has `free` now.

    Rows are read through two pre-filters: tasks that fit the node's whole capacity (a wide one
    first in line reserves the node, `reservations.py`) until a reservation is made, then only
    tasks that fit `free`, which must not delay the reserved one."""

    def __init__(self, node: Node, free: Capacity, idle: bool, claimable: Q, now: datetime) -> None:
        self.node, self.free, self.idle, self.now = node, free, idle, now
        self.tags = frozenset(node.tags)
        self.defaults = Limits.from_dict(node.defaults)
        # A foreman may offer more than it registered (it grew since): the larger counts.
        self.capacity = _larger(Capacity.from_dict(node.capacity), free)
        self.largest = max(largest_cpus(), self.capacity.cpus)
        queued = Task.objects.filter(state=State.QUEUED).filter(claimable)
        room = (self.capacity, self.capacity.cpus, self.largest, self.defaults, self.tags)
        self.queued_ever = queued.filter(_prefilter(*room, True))
        self.queued_now = queued.filter(
            _prefilter(free, self.capacity.cpus, self.largest, self.defaults, self.tags, idle)
        )
        self.plan: reservations.Plan | None = None
        self.budget = CLAIM_BUDGET

    def _queued(self) -> QuerySet[Task]:
        return self.queued_now if self.plan is not None else self.queued_ever

    def _read(self, rows: list[Row]) -> list[_Entry]:
        entries = []
        for row in rows:
            try:
                spec = TaskSpec.from_dict(row[3])
            except SpecError:
                continue  # cannot happen for a task the server accepted; never hand it out
            demand = Demand.of(spec, self.defaults).clamped(self.largest)
            fits = demand.misfit(self.free, self.tags, idle=self.idle) is None
            entries.append(_Entry(row, spec, demand, fits))
        return entries

    def _look(self, entries: list[_Entry]) -> list[Candidate]:
        """The tasks of `entries` (in the claim's order) that may start now; the first wide
        one reserves the node, and the tasks after it must not delay it."""
        found = []
        for entry in entries:
            task_id, owner_id, priority, _, reserved_by, until, _ = entry.row
            if entry.fits:
                plan = self.plan
                if plan is None or plan.allows(
                    entry.spec, entry.demand, self.defaults, self.tags, self.now
                ):
                    found.append(Candidate(task_id, owner_id, priority, entry.spec))
            elif self.plan is None and not reservations.held_elsewhere(
                self.node, reserved_by, until, self.now
            ):
                # It does not fit what is free: if it fits the whole node (the pre-filter said
                # so, `misfit` has the last word), it is first in line and the node waits for it.
                if entry.demand.misfit(self.capacity, self.tags, idle=True) is not None:
                    continue
                plan = reservations.plan(
                    self.node, task_id, entry.demand, self.free, self.tags, self.now
                )
                if reservations.hold(self.node, plan, self.now):
                    self.plan = plan
        return found

    def _owner(self, owner: int, priority: int) -> list[_Entry]:
        """One owner's queue of one priority in the owner's order, a window at a time, until
        enough fit now."""
        after, entries = Q(), []
        for _ in range(OWNER_BUDGET // WINDOW):
            rows: list[Row] = list(
                self._queued()
                .filter(after, owner_id=owner, priority=priority)
                .order_by("owner_id", "priority", "-rank", "id")
                .values_list(*CANDIDATE_FIELDS)[:WINDOW]
            )
            self.budget -= len(rows)
            entries += self._read(rows)
            fitting = sum(entry.fits for entry in entries)
            if fitting >= _wanted() or len(rows) < WINDOW or self.budget <= 0:
                break
            last_id, last_rank = rows[-1][0], rows[-1][6]
            after = Q(rank__lt=last_rank) | Q(rank=last_rank, id__gt=last_id)
        return entries

    def candidates(self) -> list[Candidate]:
        """Queued tasks that may start now, best first, from the first fair-share tier that
        has any."""
        queues = list(Backlog.objects.filter(queued__gt=0).values_list("owner_id", "priority"))
        if not queues:
            return []
        # Fair share needs the running counts only when owners compete.
        running = (
            dict(
                Task.objects.filter(state__in=ACTIVE)
                .values("owner_id")
                .annotate(n=Count("id"))
                .values_list("owner_id", "n")
            )
            if len(queues) > 1
            else {}
        )
        queues.sort(key=lambda queue: (-queue[1], running.get(queue[0], 0)))
        for (priority, _), tier in groupby(queues, key=lambda q: (q[1], running.get(q[0], 0))):
            owners = [owner for owner, _ in tier]
            if len(owners) <= SMALL_TIER:
                entries = [entry for owner in owners for entry in self._owner(owner, priority)]
            else:
                rows: list[Row] = list(
                    self._queued()
                    .filter(owner_id__in=owners, priority=priority)
                    .order_by("id")
                    .values_list(*CANDIDATE_FIELDS)[:OWNER_BUDGET]
                )
                self.budget -= len(rows)
                entries = self._read(rows)
            # Within a tier, the oldest first: whether a wide task is first in line, too.
            found = self._look(in_order(entries))
            if found:
                return found
            if self.budget <= 0:
                break
        return []


def in_order(entries: list[_Entry]) -> list[_Entry]:
    """`entries` of one tier in the claim's order: by age, each owner's tasks in the places of
    the owner's own, in the owner's order (rank, highest first, then age)."""
    places: dict[int, list[int]] = {}
    own: dict[int, list[_Entry]] = {}
    for entry in entries:
        places.setdefault(entry.row[1], []).append(entry.row[0])
        own.setdefault(entry.row[1], []).append(entry)
    placed: list[tuple[int, _Entry]] = []
    for owner, mine in own.items():
        mine.sort(key=lambda entry: (-entry.row[6], entry.row[0]))
        placed += zip(sorted(places[owner]), mine, strict=True)
    return [entry for _, entry in sorted(placed, key=lambda pair: pair[0])]


def _larger(one: Capacity, other: Capacity) -> Capacity:
    names = set(one.resources) | set(other.resources)
    return Capacity(
        cpus=max(one.cpus, other.cpus),
        memory=max(one.memory, other.memory),
        gpus=max(one.gpus, other.gpus),
        workspace=max(one.workspace, other.workspace),
        resources={
            name: max(one.resources.get(name, 0), other.resources.get(name, 0)) for name in names
        },
    )


def largest_cpus() -> int:
    """The most cores a registered node has: a task asking more is given that many. One
    aggregate in the database (registration stores `Capacity.to_dict`, cpus a number), not
    every node's capacity parsed on each claim."""
    cpus = Cast(KeyTextTransform("cpus", "capacity"), BigIntegerField())
    return int(Node.objects.aggregate(most=Max(cpus))["most"] or 0)


def _take(candidates: list[Candidate], node: Node, now: datetime) -> Claimed | None:
    """Assign the first of `candidates` still queued and not locked by another claim."""
    ttl = timedelta(seconds=settings.LEASE_TTL)
    for candidate in candidates:
        rows = Task.objects.filter(id=candidate.id, state=State.QUEUED)
        if connection.vendor == "postgresql":
            # Loser: the row is locked by another claim, so it is skipped, not waited for.
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        task = rows.select_related("owner", "batch").first()
        if task is None:
            continue  # Loser: another claim took it since we looked; try the next one.
        lease_id = uuid.uuid4()
        Task.objects.filter(id=candidate.id, state=State.QUEUED).update(
            state=State.ASSIGNED,
            node=node,
            lease_id=lease_id,
            attempts=F("attempts") + 1,
            started=None,
            updated=now,
            **reservations.CLEARED,
        )
        lease = Lease.objects.create(
            id=lease_id,
            task_id=candidate.id,
            node=node,
            attempt=task.attempts + 1,
            expires=now + ttl,
        )
        backlog.queued(candidate.owner_id, candidate.priority, -1)
        wakeup.notify(wakeup.task_topic(candidate.id))
        Node.objects.filter(pk=node.pk).update(last_seen=now)
        task.state, task.node, task.lease = State.ASSIGNED, node, lease
        task.attempts, task.started, task.updated = task.attempts + 1, None, now
        return Claimed(lease, task)
    return None


def claim_once(node: Node, free: Capacity, idle: bool) -> Claimed | None:
    """Assign the best queued task that may start in `free` on `node` under a new lease, or
    `None`; a wide task first in line that does not fit yet reserves the node instead."""
    for _ in range(3):
        # On SQLite the transaction holds the write lock from its start, so the candidates are
        # read and taken with no other claim in between. On PostgreSQL other claims run alongside:
        # a candidate they hold or took is skipped, and if all were, the claim looks again.
        with transaction.atomic():
            # Claims for one node take turns, so that together they never pass its slots.
            current = transitions.locked(Node.objects.filter(pk=node.pk)).first()
            if current is None or not current.takes_tasks:  # draining, or unhealthy
                return None
            if nodes.full(current):
                return None
            now = timezone.now()
            # Retry spacing, and the node that failed a task's last attempt avoided (retries.py).
            walk = _Walk(current, free, idle, retries.claimable(node.pk, now), now)
            candidates = walk.candidates()
            if walk.plan is None:
                reservations.drop(current)  # what this node held for is gone or started
            if not candidates:
                return None
            claimed = _take(candidates, current, timezone.now())
            if claimed is not None:
                return claimed
    return None
