"""Moves of a task between states that several callers share. Each runs inside the caller's
transaction, on a task row the caller has locked (or, on SQLite, under the write lock)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from django.conf import settings
from django.db import connection
from django.db.models import Model, QuerySet

from kolejka.common import Status

from . import dependencies, notify, retries, wakeup
from .errors import Conflict
from .models import ACTIVE, FINISHED, Batch, Dependency, Lease, Outcome, State, Task

M = TypeVar("M", bound=Model)


def locked(rows: QuerySet[M]) -> QuerySet[M]:
    """`rows` locked for update on PostgreSQL (SQLite's immediate transaction already is)."""
    if connection.vendor == "postgresql":
        return rows.select_for_update(of=("self",))
    return rows


def end_lease(task: Task, now: datetime, outcome: Outcome) -> None:
    if task.lease_id is not None:
        Lease.objects.filter(id=task.lease_id, ended=None).update(ended=now, outcome=outcome)


def requeue(task: Task, now: datetime, **fields: object) -> None:
    """Put `task` back in the queue, keeping its attempts (and setting `fields`)."""
    Task.objects.filter(pk=task.pk).update(
        state=State.QUEUED, node=None, started=None, updated=now, **fields
    )
    wakeup.queued([task.pk])
    wakeup.notify(wakeup.task_topic(task.pk))


def retry_or_fail(task: Task, now: datetime, error: str, *, retry: bool = True) -> None:
    """After a failed attempt: queue `task` again while attempts remain (spaced, and elsewhere
    first: `retries`), else fail it."""
    if retry and task.attempts < task.max_attempts:
        requeue(task, now, **retries.after_failure(task.attempts, task.node_id, now, error))
        return
    Task.objects.filter(pk=task.pk).update(
        state=State.FAILED, error=error, finished=now, updated=now
    )
    wakeup.notify(wakeup.task_topic(task.pk))
    dependencies.settle([task.pk], now)
    notify.task_ended(task, State.FAILED)


def cancel(task: Task, now: datetime) -> None:
    """Cancel `task`; its foreman learns it from its next heartbeat. 409 when finished."""
    if task.state in (State.DONE, State.FAILED):
        raise Conflict(f"the task is already {task.state}", state=task.state)
    if task.state == State.CANCELLED:
        return
    if task.state in ACTIVE:
        end_lease(task, now, Outcome.CANCELLED)
    Dependency.objects.filter(task=task).delete()
    Task.objects.filter(pk=task.pk).update(state=State.CANCELLED, finished=now, updated=now)
    wakeup.notify(wakeup.task_topic(task.pk))
    notify.task_ended(task, State.CANCELLED)
    dependencies.settle([task.pk], now)


def cancel_all(tasks: QuerySet[Task], now: datetime) -> int:
    """Cancel those of `tasks` that are queued, assigned or running, as `cancel` does one, in
    the caller's transaction; return how many. Their rows are locked first: a claim skips them
    from then on, and one that took a task before is seen here as assigned and cancelled."""
    rows = tasks.filter(state__in=[state for state in State if state not in FINISHED])
    found = list(locked(rows).order_by("id").values_list("id", flat=True))
    # By subquery, not by a list of ids: a batch's ids pass SQLite's limit of query parameters.
    Lease.objects.filter(task__in=rows, ended=None).update(ended=now, outcome=Outcome.CANCELLED)
    Dependency.objects.filter(task__in=rows).delete()
    rows.update(state=State.CANCELLED, finished=now, updated=now)
    for task_id in found:
        wakeup.notify(wakeup.task_topic(task_id))
    # Those this call cancelled: cancelled at `now` (the rows are locked until it commits).
    notify.tasks_ended(tasks.filter(state=State.CANCELLED, finished=now), State.CANCELLED)
    dependencies.settle(found, now)
    return len(found)


def failed(task: Task) -> bool:
    """Whether the final `task` did not succeed: failed, cancelled, or done without an OK
    verdict (a program that crashed, passed a limit, ...)."""
    if task.state == State.DONE:
        return (task.result or {}).get("status") != str(Status.OK)
    return task.state in (State.FAILED, State.CANCELLED)


def retry(task: Task, now: datetime) -> None:
    """Run a task that did not succeed (`failed`) again in place (`rerun`). 409 for one that
    is not final or that succeeded (a rejudge runs those)."""
    if task.state not in FINISHED or not failed(task):
        what = task.state if task.state != State.DONE else "done with an OK verdict"
        raise Conflict(
            f"only failed, cancelled or unsuccessful tasks can be retried; this one is {what}"
        )
    rerun(task, now)


def rerun(task: Task, now: datetime) -> None:
    """Queue the final `task` again under the same key for a new attempt, with as many attempts
    ahead as a new task has. The run that ended goes into its `history` (state, error, result,
    attempts, when it finished); its output files stay, so its result stays readable."""
    if task.state not in FINISHED:
        raise Conflict(f"only finished tasks can run again; this one is {task.state}")
    ended = {
        "state": task.state,
        "attempts": task.attempts,
        "finished": task.finished.isoformat() if task.finished else None,
        "error": task.error,
        "result": task.result,
    }
    Task.objects.filter(pk=task.pk).update(
        state=State.QUEUED,
        max_attempts=task.attempts + settings.MAX_ATTEMPTS,
        history=[*task.history, ended],
        error=None,
        result=None,
        node=None,
        started=None,
        finished=None,
        updated=now,
        **retries.CLEARED,
    )
    if task.batch_id is not None:
        # Its batch completes (and tells so) again when this run ends.
        Batch.objects.filter(pk=task.batch_id).update(completed=None)
    wakeup.queued([task.pk])
    wakeup.notify(wakeup.task_topic(task.pk))


def rejudge(task: Task, now: datetime) -> None:
    """Judge a final `task` again, whatever its verdict (a checker was fixed, say): `rerun`, so
    its earlier results stay readable in its `history`. 409 for a task that is not final."""
    rerun(task, now)


def take_back(task: Task, now: datetime) -> None:
    """Take an assigned or running `task` from its node and queue it again without counting the
    attempt; its foreman's next heartbeat is refused (``lease_lost``) and it kills its copy."""
    if task.state not in ACTIVE:
        raise Conflict(
            f"only assigned or running tasks can be taken back; this one is {task.state}"
        )
    end_lease(task, now, Outcome.RELEASED)
    Task.objects.filter(pk=task.pk).update(attempts=max(task.attempts - 1, 0))
    requeue(task, now)


def delete(task: Task, now: datetime) -> None:
    """Delete `task`, cancelling it first unless it is final; its blobs become garbage unless
    something else uses them."""
    if task.state not in FINISHED:
        cancel(task, now)
    task.delete()
