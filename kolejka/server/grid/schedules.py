"""Periodic tasks: a schedule queues its task as an ordinary task of its owner at every tick of
its cron expression (five fields, UTC; cronsim, healthchecks' parser).

Any server process may run the due ticks (`run_due`, from the housekeeping that claims and
heartbeats trigger, or ``kolejka-server runschedules``): the one whose conditional update moves
`next_run` on queues the run, in the same transaction, so each tick runs once however many
processes try. A tick not run within ``KOLEJKA_SCHEDULE_GRACE`` of its time was missed: with
``missed: once`` the missed ticks give one run together, with ``skip`` none.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from kolejka.common import SpecError
from kolejka.common import Task as TaskSpec

from . import blobs, submit
from .errors import ApiError, Invalid
from .models import Missed, Schedule, ScheduleFile, User

log = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)


def check_cron(cron: str) -> str:
    """`cron` if it is a five-field cron expression; `Invalid` naming the ``cron`` field."""
    try:
        CronSim(cron, timezone.now())
    except CronSimError as error:
        raise Invalid(
            f"cron: {error} (five fields: minute hour day month weekday, UTC; e.g. '*/5 * * * *')",
            field="cron",
        ) from None
    return cron


def next_tick(cron: str, after: datetime) -> datetime:
    """The first tick of `cron` strictly after `after`."""
    return next(CronSim(cron, after))


def last_tick(cron: str, now: datetime) -> datetime:
    """The last tick of `cron` at or before `now`."""
    return next(CronSim(cron, now + _TICK, reverse=True))


def create(
    user: User, cron: str, spec: TaskSpec, priority: int, missed: str = Missed.ONCE
) -> Schedule:
    """A new schedule of `user`, checked as a submission of `spec` is (`submit.admitted`), its
    first tick the next one from now."""
    item = submit.admitted(user, spec, priority, "")
    references = submit.check_blobs(user, [item])
    now = timezone.now()
    with transaction.atomic():
        if blobs.touch(references, now) != len(references):
            raise Invalid("a file of the task was deleted meanwhile; upload it again")
        schedule = Schedule.objects.create(
            owner=user,
            cron=check_cron(cron),
            spec=spec.to_dict(),
            priority=priority,
            missed=missed,
            next_run=next_tick(cron, now),
        )
        ScheduleFile.objects.bulk_create(
            ScheduleFile(schedule=schedule, blob_id=reference) for reference in references
        )
    return schedule


def pause(schedule: Schedule) -> None:
    Schedule.objects.filter(pk=schedule.pk).update(paused=True)


def resume(schedule: Schedule) -> None:
    """Run again from the next tick: the ticks passed while paused are not missed ones."""
    now = timezone.now()
    Schedule.objects.filter(pk=schedule.pk, paused=True).update(
        paused=False, next_run=next_tick(schedule.cron, now)
    )


def run_due(now: datetime, limit: int | None = 100) -> int:
    """Queue the runs of up to `limit` (`None`: all) schedules due at `now`; return how many
    runs were queued."""
    queued = 0
    due = Schedule.objects.filter(paused=False, next_run__lte=now).order_by("next_run")
    for schedule in due.select_related("owner")[:limit]:
        latest = last_tick(schedule.cron, now)
        on_time = now - latest <= timedelta(seconds=settings.SCHEDULE_GRACE)
        run = on_time or schedule.missed == Missed.ONCE
        with transaction.atomic():
            # The loser of a race with another process (it moved `next_run` first) sees 0 rows
            # and leaves the run to it.
            moved = Schedule.objects.filter(
                pk=schedule.pk, paused=False, next_run=schedule.next_run
            ).update(next_run=next_tick(schedule.cron, now))
            if not moved or not run:
                continue
            try:
                key = _queue(schedule)
            except (ApiError, SpecError) as error:
                log.warning("schedule %s queued no run: %s", schedule.key, error)
                Schedule.objects.filter(pk=schedule.pk).update(last_error=str(error))
                continue
            Schedule.objects.filter(pk=schedule.pk).update(
                runs=F("runs") + 1, last_run=now, last_task=key, last_error=None
            )
            queued += 1
    return queued


def _queue(schedule: Schedule) -> str:
    owner = schedule.owner
    if not owner.is_active:
        raise Invalid(f"its owner {owner.username} is disabled")
    item = submit.admitted(owner, TaskSpec.from_dict(schedule.spec), schedule.priority, "")
    _, tasks = submit.submit(owner, [item], batch=False)
    return tasks[0].key
