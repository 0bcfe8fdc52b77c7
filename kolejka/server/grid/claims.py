"""Claims: which queued task a node gets, decided by the database so that no task goes twice.

Order: the highest priority first; within a priority the owner with the fewest tasks running
(fair share); within an owner the oldest task. The claim visits queues from the `Backlog` table
(one row per owner and priority) and reads a bounded window of each queue through a partial
index, pre-filtered in SQL by the numeric resources; `Demand.misfit` has the final word. So the
cost of a claim depends on the number of owners waiting, not on the depth of the queue, and a
task that fits no node is passed over instead of blocking the ones behind it.

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
from django.db.models import Count, F, Q
from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits, SpecError
from kolejka.common import Task as TaskSpec

from . import backlog, nodes, retries, transitions, wakeup
from .models import ACTIVE, Backlog, Lease, Node, State, Task

# Rows read from one owner's queue per look, and in all per claim: what bounds a claim's cost
# when many queued tasks pass the SQL pre-filter but not `Demand.misfit` (e.g. required tags).
WINDOW = 16
OWNER_BUDGET = 256
CLAIM_BUDGET = 4096
# Owners of one fair-share tier looked at one by one; a larger tier is read in one query.
SMALL_TIER = 16
CANDIDATE_FIELDS = ("id", "owner_id", "priority", "spec")


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


def _prefilter(free: Capacity, defaults: Limits, tags: frozenset[str], idle: bool) -> Q:
    """Tasks that may fit `free`, judged by the columns SQL can compare."""
    query = Q()
    for column, available, default in (
        ("need_cpus", free.cpus, defaults.cpus or 1),
        ("need_memory", free.memory, defaults.memory or 0),
        ("need_gpus", free.gpus, defaults.gpus or 0),
        ("need_workspace", free.workspace, defaults.workspace or 0),
    ):
        fits = Q(**{f"{column}__lte": available})
        if default <= available:
            fits |= Q(**{f"{column}__isnull": True})
        query &= fits
    if not idle:
        query &= Q(exclusive=False)
    if not tags and not any(count > 0 for count in free.resources.values()):
        query &= Q(labelled=False)
    return query


def _wanted() -> int:
    """Candidates worth finding per queue: on SQLite the claim holds the write lock, so the first
    is sure to be free; on PostgreSQL a few spares for the ones concurrent claims take."""
    return 8 if connection.vendor == "postgresql" else 1


def _fitting(
    rows: list[tuple[int, int, int, object]],
    free: Capacity,
    defaults: Limits,
    tags: frozenset[str],
    idle: bool,
) -> list[Candidate]:
    """The first `_wanted()` of `rows` (id, owner, priority, spec) whose task fits."""
    found: list[Candidate] = []
    for task_id, owner_id, priority, document in rows:
        if len(found) >= _wanted():
            break
        try:
            spec = TaskSpec.from_dict(document)
        except SpecError:
            continue  # cannot happen for a task the server accepted; never hand it out
        if Demand.of(spec, defaults).misfit(free, tags, idle=idle) is None:
            found.append(Candidate(task_id, owner_id, priority, spec))
    return found


def _candidates(
    prefilter: Q, free: Capacity, defaults: Limits, tags: frozenset[str], idle: bool
) -> list[Candidate]:
    """Queued tasks that fit, best first, from the first fair-share tier that has any."""
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
    budget = CLAIM_BUDGET
    queued = Task.objects.filter(state=State.QUEUED).filter(prefilter)
    for (priority, _), tier in groupby(queues, key=lambda q: (q[1], running.get(q[0], 0))):
        owners = [owner for owner, _ in tier]
        found: list[Candidate] = []
        if len(owners) <= SMALL_TIER:
            for owner in owners:
                last = 0
                for _ in range(OWNER_BUDGET // WINDOW):
                    rows = list(
                        queued.filter(owner_id=owner, priority=priority, id__gt=last)
                        .order_by("owner_id", "priority", "id")
                        .values_list(*CANDIDATE_FIELDS)[:WINDOW]
                    )
                    budget -= len(rows)
                    fitting = _fitting(rows, free, defaults, tags, idle)
                    if fitting or len(rows) < WINDOW or budget <= 0:
                        found.extend(fitting)
                        break
                    last = rows[-1][0]
        else:
            rows = list(
                queued.filter(owner_id__in=owners, priority=priority)
                .order_by("id")
                .values_list(*CANDIDATE_FIELDS)[:OWNER_BUDGET]
            )
            budget -= len(rows)
            found = _fitting(rows, free, defaults, tags, idle)
        if found:
            return sorted(found, key=lambda candidate: candidate.id)
        if budget <= 0:
            break
    return []


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
    """Assign the best queued task that fits `free` on `node` under a new lease, or `None`."""
    tags = frozenset(node.tags)
    defaults = Limits.from_dict(node.defaults)
    prefilter = _prefilter(free, defaults, tags, idle)
    # Retry spacing, and the node that failed a task's last attempt avoided (retries.py).
    prefilter &= retries.claimable(node.pk, timezone.now())
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
            candidates = _candidates(prefilter, free, defaults, tags, idle)
            if not candidates:
                return None
            claimed = _take(candidates, current, timezone.now())
            if claimed is not None:
                return claimed
    return None
