"""Batches of any size: opened, filled page by page (one transaction per page), sealed (all of
its tasks queued in one transaction), and then watched, re-run, cancelled or purged as a whole.

A batch is atomic as a whole: until it is sealed its tasks are `STAGED`, which no claim reads and
no listing shows, so a batch whose submission died half-way runs nothing (purge it). Pages carry
the position of their first task, which must be the batch's size so far: a page sent twice (its
answer lost) is refused with the size, instead of adding its tasks twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min, QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone

from kolejka.common import Status
from kolejka.common.notify import Notify

from . import blobs, dependencies, notify, submit, transitions, wakeup
from .errors import Conflict, Invalid
from .models import FINISHED, STAGED, Batch, BatchState, State, Task, User
from .submit import Submission

# Tasks changed per transaction by a re-run, a cancel or a purge: row locks held briefly.
CHUNK = 500


def open_batch(user: User, told: tuple[Notify, ...] = ()) -> Batch:
    """A new open batch of `user`'s, which tells `told` of its completion."""
    return Batch.objects.create(owner=user, state=BatchState.OPEN, notify=notify.stored(told))


def _locked_open(batch: Batch) -> Batch:
    current = transitions.locked(Batch.objects.filter(pk=batch.pk)).get()
    if current.state != BatchState.OPEN:
        raise Conflict(f"the batch {batch.key} is sealed; open a new batch", state=current.state)
    return current


def add_page(batch: Batch, start: int, submissions: list[Submission]) -> Batch:
    """Add `submissions` as the tasks at positions `start`, `start` + 1, ... of the open `batch`,
    staged, in one transaction. 409 when the batch is sealed or `start` is not its size."""
    references = submit.check_blobs(batch.owner, submissions)
    now = timezone.now()
    with transaction.atomic():
        # Pages of one batch take turns; the loser of a race for the same `start` sees the size
        # the winner left and is refused.
        current = _locked_open(batch)
        if start != current.size:
            raise Conflict(
                f"start: the batch has {current.size} tasks; the next page starts there "
                f"(got {start})",
                field="start",
                size=current.size,
            )
        if blobs.touch(references, now) != len(references):
            raise Invalid("a file of the tasks was deleted meanwhile; upload it again")
        tasks = Task.objects.bulk_create(
            submit.row(batch.owner, item, current, start + index, STAGED)
            for index, item in enumerate(submissions)
        )
        submit.add_files(tasks, submissions)
        submit.link(batch.owner, tasks, submissions, now, start)
        current.size += len(tasks)
        Batch.objects.filter(pk=current.pk).update(size=current.size)
    return current


def seal(batch: Batch) -> Batch:
    """Queue every task of `batch` at once and close it to pages; a sealed batch stays as it
    is (sealing is idempotent). 409 for an empty batch."""
    now = timezone.now()
    with transaction.atomic():
        current = transitions.locked(Batch.objects.filter(pk=batch.pk)).get()
        if current.state == BatchState.SEALED:
            return current
        if current.size == 0:
            raise Conflict(f"the batch {batch.key} has no tasks; add a page first")
        staged = Task.objects.filter(batch=current, state=STAGED)
        # A dependency that failed a task while its batch was open left its reason (`error`).
        failed = list(staged.filter(error__isnull=False).values_list("id", flat=True))
        staged.filter(error__isnull=False).update(state=State.CANCELLED, finished=now, updated=now)
        staged.filter(awaits__isnull=False).update(state=State.WAITING, updated=now)
        queued = staged.update(state=State.QUEUED, updated=now)
        dependencies.settle(failed, now)
        Batch.objects.filter(pk=current.pk).update(state=BatchState.SEALED, sealed=now)
        current.state, current.sealed = BatchState.SEALED, now
        wakeup.queued_many(queued)
    return current


def progress(batch: Batch) -> dict[str, Any]:
    """The batch resource: its tasks counted by state and by verdict, and its times."""
    return progress_of([batch])[0]


def progress_of(batches: list[Batch]) -> list[dict[str, Any]]:
    """`progress` of each of `batches`, in three queries for all of them."""
    tasks = Task.objects.filter(batch__in=batches)
    states: dict[int, dict[str, int]] = {batch.pk: {} for batch in batches}
    for batch_id, state, n in (
        tasks.values("batch_id", "state")
        .annotate(n=Count("id"))
        .values_list("batch_id", "state", "n")
    ):
        states[batch_id][state] = n
    verdicts: dict[int, dict[str, int]] = {batch.pk: {} for batch in batches}
    for batch_id, verdict, n in (
        tasks.filter(state=State.DONE)
        .values("batch_id", verdict=KT("result__status"))
        .annotate(n=Count("id"))
        .values_list("batch_id", "verdict", "n")
    ):
        verdicts[batch_id][str(verdict or "none")] = n
    times = {
        batch_id: (started, finished)
        for batch_id, started, finished in tasks.values("batch_id")
        .annotate(started=Min("started"), finished=Max("finished"))
        .values_list("batch_id", "started", "finished")
    }
    return [
        {
            **summary(batch),
            "states": {str(state): states[batch.pk].get(state, 0) for state in State},
            "verdicts": dict(sorted(verdicts[batch.pk].items())),
            "started": times.get(batch.pk, (None, None))[0],
            "finished": times.get(batch.pk, (None, None))[1],
        }
        for batch in batches
    ]


def summary(batch: Batch) -> dict[str, Any]:
    """What a list of batches shows of each."""
    return {
        "batch": batch.key,
        "owner": batch.owner.username,
        "state": batch.state,
        "total": batch.size,
        "created": batch.created,
        "sealed": batch.sealed,
    }


RERUN_WHICH = ("failed", "all", "verdict")


def rerun_candidates(batch: Batch, which: str, verdicts: list[str]) -> QuerySet[Task]:
    """The final tasks of `batch` that a re-run of `which` takes: ``failed`` every task that did
    not end with an OK verdict, ``all`` every final task, ``verdict`` the done tasks whose verdict
    is one of `verdicts`."""
    tasks = Task.objects.filter(batch=batch, state__in=FINISHED)
    if which == "failed":
        not_ok = Task.objects.filter(batch=batch, state=State.DONE).exclude(
            result__status=str(Status.OK)
        )
        return tasks.exclude(state=State.DONE) | not_ok
    if which == "verdict":
        return tasks.filter(state=State.DONE, result__status__in=verdicts)
    return tasks


def rerun(batch: Batch, which: str, verdicts: list[str]) -> int:
    """Run the tasks `rerun_candidates` names again in place (`transitions.rerun`: same keys, a
    new attempt, the earlier one kept in their history); return how many. 409 for an open batch."""
    if batch.state != BatchState.SEALED:
        raise Conflict(f"the batch {batch.key} is still open; seal it first")
    ids = list(rerun_candidates(batch, which, verdicts).order_by("id").values_list("id", flat=True))
    return each(ids, lambda task, now: transitions.rerun(task, now), FINISHED)


def cancel(batch: Batch) -> int:
    """Cancel every task of the sealed `batch` not final yet, in one transaction; return how
    many. 409 for an open batch (nothing of it runs: purge it)."""
    if batch.state != BatchState.SEALED:
        raise Conflict(f"the batch {batch.key} is still open and runs nothing; purge it")
    with transaction.atomic():
        return transitions.cancel_all(Task.objects.filter(batch=batch), timezone.now())


def purge(batch: Batch) -> int:
    """Delete `batch`, its tasks (cancelled first where they run) and their results, in one
    transaction; the blobs only they used become garbage for `kolejka-server collectgarbage`.
    Return how many tasks went."""
    with transaction.atomic():
        transitions.cancel_all(Task.objects.filter(batch=batch), timezone.now())
        _, gone = Task.objects.filter(batch=batch).delete()
        Batch.objects.filter(pk=batch.pk).delete()
    return gone.get(Task._meta.label, 0)


def each(ids: list[int], change: Callable[[Task, datetime], None], states: tuple[str, ...]) -> int:
    """Apply `change` to the tasks `ids` still in one of `states`, under their row locks, a
    chunk per transaction; return how many it was applied to."""
    changed = 0
    for begin in range(0, len(ids), CHUNK):
        with transaction.atomic():
            now = timezone.now()
            # Loser of a race (a task claimed, finished or cancelled meanwhile): the state filter
            # leaves it out, or the change refuses it as it would for one task.
            rows = transitions.locked(
                Task.objects.filter(id__in=ids[begin : begin + CHUNK], state__in=states)
            ).order_by("id")
            for task in rows:
                change(task, now)
                changed += 1
    return changed
