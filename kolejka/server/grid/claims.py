"""Claims: which queued tasks a node gets, decided by the database so that no task goes twice.

Order: the highest priority first; within a priority the owner with the fewest tasks running
(fair share); then the oldest task, except that each owner's own tasks take the places their
owner's tasks hold in that order in the owner's own order (`rank`, highest first; then age):
an owner reorders their own tasks, never gets one ahead of another owner's. Waiting tasks
(`dependencies.py`) are not queued: no claim reads them.

Cost: a claim lists the queues, the distinct (owner, priority, needs) of queued tasks, by a loose
scan of a partial index (one index probe per queue, no counter row that every claim would
write), keeps the queues whose needs (required tags, named resources: `needs.py`) its node has,
and reads a window of each in the owner's order, filtered in SQL by the numeric resources
(`need_*`); `Demand.misfit` has the final word. So the cost of a claim depends on the number of
queues, not on their depth, and no number of queued tasks that fit no node (or not this one)
delays the tasks behind them: a claim never reads them. A task that fits the node but not its
free part, first in line, reserves the node: the tasks after it start only if they do not delay
it (`reservations.py`); at most `BACKFILL` of them are looked at beside it. A task asking more
cpus than any registered node has asks the largest node's cores (`Demand.clamped`).

One claim may take several tasks (`claim`'s `count`): each is picked as a claim of its own would
pick it, from what the ones before left free, with the owner of each counted as running one more.

The winner of a race takes the row in one locked statement: ``SELECT ... ORDER BY <the claim's
order> LIMIT 1 FOR UPDATE SKIP LOCKED`` on PostgreSQL (a loser skips the rows other claims hold
and gets its next candidate in the same statement), and an immediate transaction on SQLite (a
loser waits for the write lock, then finds the row no longer queued and takes its next one).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, Count, F, Max, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits, SpecError
from kolejka.common import Task as TaskSpec

from . import nodes, reservations, retries, transitions, wakeup
from .models import ACTIVE, Lease, Node, State, Task
from .needs import Needs

# Rows read from one queue per look. Every row read passes the SQL filter, so it rarely fails
# `Demand.misfit`: a window is what is read before the claim's order is known, not a limit on
# how deep in the queue a runnable task may be.
WINDOW = 16
# Rows looked at beside a reservation for the first that does not delay the wide task: what
# bounds a claim of a node that waits for a wide task behind a long queue of tasks that would.
BACKFILL = 256
# Owners of one fair-share tier read one by one; a larger tier is read in one query.
SMALL_TIER = 16
CANDIDATE_FIELDS = (
    "id", "owner_id", "priority", "spec", "reserved_node_id", "reserved_until", "rank"
)  # fmt: skip
Row = tuple[int, int, int, object, int | None, datetime | None, int]
Queue = tuple[int, int, str]  # owner id, priority, needs

_TABLE = Task._meta.db_table
_NEXT = (
    f"SELECT owner_id, priority, needs FROM {_TABLE} WHERE state = 'queued' {{after}} "
    "ORDER BY owner_id, priority, needs LIMIT 1"
)
# PostgreSQL walks the index from queue to queue in one statement; SQLite, in-process, by one
# statement per queue. Both are one index probe per queue.
_QUEUES_POSTGRES = (
    "WITH RECURSIVE queues AS (("
    + _NEXT.format(after="")
    + ") UNION ALL SELECT next.owner_id, next.priority, next.needs FROM queues CROSS JOIN "
    "LATERAL ("
    + _NEXT.format(
        after="AND (owner_id, priority, needs) > (queues.owner_id, queues.priority, queues.needs)"
    )
    + ") AS next) SELECT owner_id, priority, needs FROM queues"
)


def queues() -> list[Queue]:
    """The distinct (owner id, priority, needs) of the queued tasks, by a loose index scan of
    ``task_queued_by_needs``."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_QUEUES_POSTGRES)
            return [(owner, priority, needs) for owner, priority, needs in cursor.fetchall()]
        found: list[Queue] = []
        cursor.execute(_NEXT.format(after=""))
        row = cursor.fetchone()
        while row is not None:
            found.append((row[0], row[1], row[2]))
            cursor.execute(
                _NEXT.format(after="AND (owner_id, priority, needs) > (%s, %s, %s)"), list(row)
            )
            row = cursor.fetchone()
        return found


@dataclass(frozen=True)
class Candidate:
    id: int
    owner_id: int
    priority: int
    spec: TaskSpec
    demand: Demand


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


def _prefilter(room: Capacity, node_cpus: int, largest: int, defaults: Limits, idle: bool) -> Q:
    """Tasks that may fit `room`, judged by the columns SQL can compare (the needs are judged
    per queue: `Needs.met`)."""
    query = _cpus("need_cpus", room.cpus, node_cpus, largest, defaults.cpus or 1)
    for column, available, default in (
        ("need_memory", room.memory, defaults.memory or 0),
        ("need_gpus", room.gpus, defaults.gpus or 0),
        ("need_workspace", room.workspace, defaults.workspace or 0),
        ("need_gpu_memory", room.gpu_memory, defaults.gpu_memory or 0),
    ):
        fits = Q(**{f"{column}__lte": available})
        if default <= available:
            fits |= Q(**{f"{column}__isnull": True})
        query &= fits
    if not idle:
        query &= Q(exclusive=False)
    return query


def _wanted() -> int:
    """Candidates worth finding: on SQLite the claim holds the write lock, so the first is sure
    to be free; on PostgreSQL a few spares for the ones concurrent claims take."""
    return 8 if connection.vendor == "postgresql" else 1


@dataclass(frozen=True)
class _Entry:
    """A queued task as a claim reads it: its row, spec, demand, and whether it fits now."""

    row: Row
    spec: TaskSpec
    demand: Demand
    fits: bool


@dataclass(frozen=True)
class _Filter:
    """Which queued tasks a look reads: by SQL (`rows`) and by their queue's needs (`room`)."""

    rows: QuerySet[Task]
    room: Capacity


class _Walk:
    """One claim's walks down the queue for `node`, which has `free` now: one walk per task it
    takes, each from what the ones before left free.

    Rows are read through two filters: tasks that fit the node's whole capacity (a wide one
    first in line reserves the node, `reservations.py`), then, when one of those did not fit
    what is free, or a reservation holds, only tasks that fit `free`, which must not delay the
    reserved one."""

    def __init__(self, node: Node, free: Capacity, idle: bool, claimable: Q, now: datetime) -> None:
        self.node, self.now = node, now
        self.tags = frozenset(node.tags)
        self.defaults = Limits.from_dict(node.defaults)
        # A foreman may offer more than it registered (it grew since): the larger counts.
        self.capacity = _each(Capacity.from_dict(node.capacity), free, max)
        # Nor more than the node's open leases leave, by the server's books: a `free` sent
        # before another claim for the node took tasks (the answer to a result) is stale.
        free = _each(free, nodes.free_of(node, self.capacity), min)
        self.largest = max(largest_cpus(), self.capacity.cpus)
        self.queued = Task.objects.filter(state=State.QUEUED).filter(claimable)
        self.ever = self._filter(self.capacity, True)
        met: dict[str, bool] = {}
        for _, _, needs in (found := queues()):
            met.setdefault(needs, Needs.of(needs).met(self.tags, self.capacity))
        self.queues = [queue for queue in found if met[queue[2]]]
        # Fair share needs the running counts only when owners compete.
        self.running: Counter[int] = Counter(
            dict(
                Task.objects.filter(state__in=ACTIVE)
                .values("owner_id")
                .annotate(n=Count("id"))
                .values_list("owner_id", "n")
            )
            if len({owner for owner, _, _ in self.queues}) > 1
            else {}
        )
        self.plan: reservations.Plan | None = None
        self.free, self.idle = free, idle
        self._now: _Filter | None = None
        self.taken: set[int] = set()
        self.last: tuple[list[tuple[int, dict[int, list[str]]]], list[_Entry]] | None = None

    def _filter(self, room: Capacity, idle: bool) -> _Filter:
        sql = _prefilter(room, self.capacity.cpus, self.largest, self.defaults, idle)
        return _Filter(self.queued.filter(sql), room)

    def took(self, candidate: Candidate) -> None:
        """Count `candidate`, just taken, in what the next walk sees."""
        self.running[candidate.owner_id] += 1
        self.taken.add(candidate.id)
        self.free = self.free.minus(candidate.demand.booking(self.capacity))
        self.idle = False
        self._now = None

    @property
    def now_filter(self) -> _Filter:
        """The filter of tasks that fit what is free now."""
        if self._now is None:
            self._now = self._filter(self.free, self.idle)
        return self._now

    def _read(
        self, priority: int, owners: dict[int, list[str]], look: _Filter, limit: int
    ) -> list[_Entry]:
        """Up to `limit` rows of each of the tier's queues that `look` lets through, parsed."""
        met: dict[str, bool] = {}
        for needs in {needs for keys in owners.values() for needs in keys}:
            met[needs] = Needs.of(needs).met(self.tags, look.room)
        rows: list[Row] = []
        if len(owners) <= SMALL_TIER:
            for owner, keys in owners.items():
                for needs in (needs for needs in keys if met[needs]):
                    rows += (
                        look.rows.filter(owner_id=owner, priority=priority, needs=needs)
                        .order_by("owner_id", "priority", "needs", "-rank", "id")
                        .values_list(*CANDIDATE_FIELDS)[:limit]
                    )
        else:
            rows += (
                look.rows.filter(
                    owner_id__in=owners,
                    priority=priority,
                    needs__in=[needs for needs, ok in met.items() if ok],
                )
                .order_by("id")
                .values_list(*CANDIDATE_FIELDS)[:limit]
            )
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
                    found.append(Candidate(task_id, owner_id, priority, entry.spec, entry.demand))
            elif self.plan is None and not reservations.held_elsewhere(
                self.node, reserved_by, until, self.now
            ):
                # It does not fit what is free: if it fits the whole node (the filter said so,
                # `misfit` has the last word), it is first in line and the node waits for it.
                if entry.demand.misfit(self.capacity, self.tags, idle=True) is not None:
                    continue
                plan = reservations.plan(
                    self.node, task_id, entry.demand, self.free, self.tags, self.now
                )
                if reservations.hold(self.node, plan, self.now):
                    self.plan = plan
        return found[: _wanted()] if self.plan is None else found

    def _tier(
        self, priority: int, owners: dict[int, list[str]]
    ) -> tuple[list[Candidate], list[_Entry]]:
        """The candidates of one tier, and the entries they came from in the claim's order."""
        look = self.ever if self.plan is None else self.now_filter
        # Within a tier, the oldest first: whether a wide task is first in line, too.
        entries = in_order(self._read(priority, owners, look, WINDOW))
        found = self._look(entries)
        if found or (self.plan is None and all(entry.fits for entry in entries)):
            return found, entries
        # What came first does not fit what is free, or would delay the reserved task: read on
        # among the tasks that fit what is free.
        limit = WINDOW if self.plan is None else BACKFILL
        entries = in_order(self._read(priority, owners, self.now_filter, limit))
        return self._look(entries), entries

    def _tiers(self) -> list[tuple[int, dict[int, list[str]]]]:
        """The fair-share tiers, best first: a priority and its owners with as many running,
        with the needs of each owner's queues."""
        order = sorted(self.queues, key=lambda queue: (-queue[1], self.running[queue[0]]))
        tiers = []
        for (priority, _), tier in groupby(order, key=lambda q: (q[1], self.running[q[0]])):
            owners: dict[int, list[str]] = {}
            for owner, _, needs in tier:
                owners.setdefault(owner, []).append(needs)
            tiers.append((priority, owners))
        return tiers

    def _again(self, entries: list[_Entry]) -> list[Candidate]:
        """The candidates the last walk read, after what this claim took since: up to the first
        that does not fit what is left (it might reserve the node: a walk decides)."""
        found = []
        for entry in entries:
            if entry.row[0] in self.taken:
                continue
            if entry.demand.misfit(self.free, self.tags, idle=self.idle) is not None:
                break
            task_id, owner_id, priority = entry.row[:3]
            found.append(Candidate(task_id, owner_id, priority, entry.spec, entry.demand))
        return found[: _wanted()]

    def candidates(self) -> list[Candidate]:
        """Queued tasks that may start now, best first, from the first fair-share tier that
        has any."""
        tiers = self._tiers()
        # The next task of a claim of several: while the tiers are as they were (the owner
        # just served did not fall behind another), what the last walk read is still in order.
        if self.last is not None and self.plan is None and self.last[0] == tiers:
            found = self._again(self.last[1])
            if found:
                return found
        self.last = None
        for priority, owners in tiers:
            found, entries = self._tier(priority, owners)
            if found:
                self.last = (tiers, entries)
                return found
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


def _each(one: Capacity, other: Capacity, pick: Callable[[int, int], int]) -> Capacity:
    """The capacity of `pick` (max or min) of `one`'s and `other`'s every count."""
    names = set(one.resources) | set(other.resources)
    return Capacity(
        cpus=pick(one.cpus, other.cpus),
        memory=pick(one.memory, other.memory),
        gpus=pick(one.gpus, other.gpus),
        workspace=pick(one.workspace, other.workspace),
        resources={
            name: pick(one.resources.get(name, 0), other.resources.get(name, 0)) for name in names
        },
        gpu_memory=pick(one.gpu_memory, other.gpu_memory),
    )


def largest_cpus() -> int:
    """The most cores a registered node has: a task asking more is given that many. One
    aggregate in the database (registration stores `Capacity.to_dict`, cpus a number), not
    every node's capacity parsed on each claim."""
    cpus = Cast(KeyTextTransform("cpus", "capacity"), BigIntegerField())
    return int(Node.objects.aggregate(most=Max(cpus))["most"] or 0)


def _take(
    candidates: list[Candidate], node: Node, now: datetime
) -> tuple[Candidate, Claimed] | None:
    """Assign the first of `candidates` still queued and not locked by another claim, in one
    locked statement; `None` when all were taken or are held."""
    by_id = {candidate.id: candidate for candidate in candidates}
    first = Case(*(When(id=c.id, then=Value(at)) for at, c in enumerate(candidates)))
    rows = Task.objects.filter(id__in=by_id, state=State.QUEUED).order_by(first)
    if connection.vendor == "postgresql":
        # Loser: a row locked by another claim is skipped, not waited for, and the next taken.
        rows = rows.select_for_update(skip_locked=True, of=("self",))
    task = rows.select_related("owner", "batch").first()
    if task is None:
        return None  # Loser: other claims took or hold every candidate since we looked.
    lease_id = uuid.uuid4()
    Task.objects.filter(id=task.pk, state=State.QUEUED).update(
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
        task_id=task.pk,
        node=node,
        attempt=task.attempts + 1,
        expires=now + timedelta(seconds=settings.LEASE_TTL),
    )
    wakeup.notify(wakeup.task_topic(task.pk))
    task.state, task.node, task.lease = State.ASSIGNED, node, lease
    task.attempts, task.started, task.updated = task.attempts + 1, None, now
    return by_id[task.pk], Claimed(lease, task)


def claim(node: Node, free: Capacity, idle: bool, count: int = 1) -> list[Claimed]:
    """Assign up to `count` of the best queued tasks that start together in `free` on `node`
    (its slots allowing), each under a new lease, best first; `[]` if none may start. A wide
    task first in line that does not fit what is left reserves the node instead."""
    for _ in range(3):
        # On SQLite the transaction holds the write lock from its start, so the candidates are
        # read and taken with no other claim in between. On PostgreSQL other claims run alongside:
        # a candidate they hold or took is skipped, and if all were, the claim looks again.
        with transaction.atomic():
            # Claims for one node take turns, so that together they never pass its slots.
            current = transitions.locked(Node.objects.filter(pk=node.pk)).first()
            if current is None or not current.takes_tasks:  # draining, or unhealthy
                return []
            busy = nodes.running(current)
            slots = current.slots - busy
            if slots <= 0:
                return []
            now = timezone.now()
            # Retry spacing, and the node that failed a task's last attempt avoided (retries.py).
            walk = _Walk(current, free, idle and not busy, retries.claimable(node.pk, now), now)
            claimed: list[Claimed] = []
            lost = False
            while len(claimed) < min(count, slots):
                candidates = walk.candidates()
                taken = _take(candidates, current, timezone.now()) if candidates else None
                if taken is None:
                    lost = bool(candidates)
                    break
                walk.took(taken[0])
                claimed.append(taken[1])
            if walk.plan is None:
                reservations.drop(current)  # what this node held for is gone or started
            if claimed:
                Node.objects.filter(pk=node.pk).update(last_seen=now)
            if claimed or not lost:
                return claimed
    return []
