"""Leases: heartbeats, results, failures and releases from foremen, and the reaper of expired
leases. A lease is current while its task points at it, it has not ended and it has not expired;
only the current lease moves its task."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kolejka.common import Result

from . import blobs, deliver, dependencies, notify, policies, schedules, transitions, wakeup
from .errors import Conflict, Invalid, LeaseLost, NotFound
from .models import (
    ACTIVE,
    Lease,
    LogChunk,
    Node,
    Outcome,
    State,
    Task,
    TaskFile,
    User,
    Wakeup,
)

log = logging.getLogger(__name__)


def lease_of(user: User, lease_id: str) -> Lease:
    """The lease `lease_id` of a node `user` runs; 404 for anyone else's."""
    lease = (
        Lease.objects.filter(id=lease_id, node__owner=user).first() if _is_uuid(lease_id) else None
    )
    if lease is None:
        raise NotFound("no such lease")
    return lease


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def current_task(lease: Lease, now: datetime) -> int:
    """The id of `lease`'s task; `LeaseLost` unless the lease may still move it."""
    if lease.outcome == Outcome.DONE:
        raise Conflict("a result for this lease was already accepted")
    if lease.outcome == Outcome.CANCELLED:
        raise LeaseLost("the task was cancelled by its owner; kill it")
    if lease.ended is not None or lease.expires <= now or lease.task_id is None:
        raise LeaseLost("the lease expired or was taken over; kill the task")
    return lease.task_id


@dataclass(frozen=True)
class Beat:
    expires: datetime
    cancel: bool


def heartbeat(lease: Lease, running: bool) -> Beat:
    """Renew `lease`; a cancelled task's lease answers ``cancel`` instead."""
    reap_due()
    now = timezone.now()
    if lease.outcome == Outcome.CANCELLED:
        return Beat(lease.expires, cancel=True)
    expires = now + timedelta(seconds=settings.LEASE_TTL)
    with transaction.atomic():
        # Loser of a race with the reaper: the lease expired first, this renews nothing.
        renewed = Lease.objects.filter(id=lease.id, ended=None, expires__gt=now).update(
            expires=expires
        )
        if not renewed:
            ended = Lease.objects.filter(id=lease.id).values_list("outcome", flat=True).first()
            if ended == Outcome.CANCELLED:
                return Beat(lease.expires, cancel=True)
            raise LeaseLost("the lease expired or was taken over; kill the task")
        if running and lease.task_id is not None:
            moved = Task.objects.filter(
                id=lease.task_id, lease_id=lease.id, state=State.ASSIGNED
            ).update(state=State.RUNNING, started=now, updated=now)
            if moved:
                wakeup.notify(wakeup.task_topic(lease.task_id))
        Node.objects.filter(pk=lease.node_id).update(last_seen=now)
    return Beat(expires, cancel=False)


def accept_result(lease: Lease, user: User, result: Result) -> Task:
    """Accept `result` for `lease`'s task, once, from the current lease only."""
    references = {}
    for name, file in result.files.items():
        if file.reference is None:
            raise Invalid(
                f"files.{name}: a result names its files by the reference of a blob you uploaded",
                field=f"files.{name}.reference",
            )
        references[name] = file.reference
    found = blobs.readable(user, references.values())
    for name, reference in references.items():
        if reference not in found:
            raise Invalid(
                f"files.{name}.reference: no such blob; upload it first (got {reference!r})",
                field=f"files.{name}.reference",
            )
    now = timezone.now()
    with transaction.atomic():
        current = transitions.locked(Lease.objects.filter(id=lease.id)).get()
        task_id = current_task(current, now)
        # Exactly once: only the task still pointing at this lease, still active, moves (to
        # done, or back to the queue by its retry policy), under its row lock.
        # Loser (a second result, a reaper or a cancel that came first): nothing moves, 409.
        task = transitions.locked(
            Task.objects.filter(id=task_id, lease_id=current.id, state__in=ACTIVE)
        ).first()
        if task is None:
            raise LeaseLost("the lease no longer holds its task; kill the task")
        Lease.objects.filter(id=current.id).update(ended=now, outcome=Outcome.DONE)
        blobs.touch(references.values(), now)
        TaskFile.objects.bulk_create(
            TaskFile(task_id=task_id, blob_id=reference, name=name, output=True)
            for name, reference in references.items()
        )
        # The result's files hold the attempt's whole output now (`logs.read`, and the
        # attempt a retry policy keeps in `history`): the streamed copy goes.
        LogChunk.objects.filter(task_id=task_id).delete()
        if policies.rerun(task, result, now):
            return _loaded(task_id)
        Task.objects.filter(pk=task_id).update(
            state=State.DONE,
            result=policies.final(task, result),
            finished=now,
            updated=now,
            error=None,
        )
        wakeup.notify(wakeup.task_topic(task_id))
        dependencies.settle([task_id], now)
        done = _loaded(task_id)
        notify.task_ended(done, State.DONE)
    return done


def _loaded(task_id: int) -> Task:
    return Task.objects.select_related("owner", "node", "batch").get(id=task_id)


@contextmanager
def _ending(lease: Lease, outcome: str, lost: str) -> Iterator[tuple[Task, datetime]]:
    """End the current `lease` with `outcome` and give its task (locked) to the caller's change,
    in one transaction; `LeaseLost` with `lost` when the lease no longer holds a task."""
    now = timezone.now()
    with transaction.atomic():
        current = transitions.locked(Lease.objects.filter(id=lease.id)).get()
        task_id = current_task(current, now)
        task = transitions.locked(
            Task.objects.filter(id=task_id, lease_id=current.id, state__in=ACTIVE)
        ).first()
        if task is None:
            raise LeaseLost(lost)
        Lease.objects.filter(id=current.id).update(ended=now, outcome=outcome)
        yield task, now


def fail(lease: Lease, error: str, retry: bool) -> Task:
    """A platform failure of the attempt: queue the task again or fail it."""
    lost = "the lease no longer holds its task; kill the task"
    with _ending(lease, Outcome.FAILED, lost) as (task, now):
        transitions.retry_or_fail(task, now, error, retry=retry)
    return _loaded(task.pk)


def release(lease: Lease) -> Task:
    """Hand the task back without counting the attempt."""
    with _ending(lease, Outcome.RELEASED, "the lease no longer holds its task") as (task, now):
        Task.objects.filter(pk=task.pk).update(attempts=max(task.attempts - 1, 0))
        transitions.requeue(task, now)
    return _loaded(task.pk)


def reap(now: datetime, limit: int = 100) -> int:
    """End up to `limit` expired leases; requeue or fail their tasks. Return how many ended."""
    reaped = 0
    # Only past the margin: the node has killed its copy by `expires - margin` (its observer
    # does, even if the node froze), so a second copy never starts while the first runs.
    past = now - timedelta(seconds=settings.LEASE_MARGIN)
    expired = Lease.objects.filter(ended=None, expires__lt=past).order_by("expires")
    for lease_id, node_name in expired.values_list("id", "node__name")[:limit]:
        with transaction.atomic():
            # Loser of a race with a heartbeat (renewed first) or another reaper: 0 rows, skip.
            if not Lease.objects.filter(id=lease_id, ended=None, expires__lt=past).update(
                ended=now, outcome=Outcome.EXPIRED
            ):
                continue
            reaped += 1
            task = transitions.locked(
                Task.objects.filter(lease_id=lease_id, state__in=ACTIVE)
            ).first()
            if task is not None:
                log.warning("lease of %s on node %s expired", task.key, node_name)
                transitions.retry_or_fail(
                    task,
                    now,
                    f"system error: the lease on node {node_name} expired "
                    f"(attempt {task.attempts} of {task.max_attempts}); the node stopped "
                    "heartbeating",
                )
    Wakeup.objects.filter(created__lt=now - timedelta(minutes=5)).delete()
    return reaped


_last_reap = 0.0
_reap_lock = threading.Lock()


def reap_due() -> None:
    """Reap expired leases, queue the runs of due schedules and wake the delivery thread (for
    retries that came due), at most once a second per process: claims and heartbeats call it, so
    no separate cron is needed (``kolejka-server reap``, ``runschedules`` and ``deliver`` do the
    same by hand)."""
    global _last_reap
    with _reap_lock:
        if time.monotonic() - _last_reap < 1.0:
            return
        _last_reap = time.monotonic()
    now = timezone.now()
    reap(now)
    schedules.run_due(now)
    deliver.kick()
