"""Submitting tasks: the common format's checks, blob access, and one transaction per batch (or
per page of an open batch: `batches`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from kolejka.common import Task as TaskSpec
from kolejka.common.after import After
from kolejka.common.notify import Notify

from . import blobs, dependencies, needs, notify, policies, wakeup
from .errors import Conflict, Forbidden, Invalid
from .models import Batch, Role, State, Task, TaskFile, User


@dataclass(frozen=True)
class Submission:
    spec: TaskSpec
    priority: int
    field: str  # where in the request body it came from, for error messages
    rank: int = 0
    after: tuple[After, ...] = ()

    @property
    def at(self) -> str:
        """The prefix of its fields in error messages."""
        return f"{self.field}." if self.field else ""


def admitted(
    user: User,
    spec: TaskSpec,
    priority: int,
    field: str = "",
    rank: int = 0,
    after: tuple[After, ...] = (),
) -> Submission:
    """One task as the API read it (the serializer checked its format), if `user` may submit it:
    only admins go above priority 0, a submitted task names its files by blob reference, its
    notification targets are ones the server may send to (`notify.check`), and its retry
    policy's memory cap fits a node (`policies.check`).
    `rank` orders it among its owner's tasks, `after` are its dependencies (`dependencies`)."""
    at = f"{field}." if field else ""
    if priority > 0 and user.role != Role.ADMIN:
        raise Forbidden(f"{at}priority: only admins may set a priority above 0", f"{at}priority")
    for name, file in spec.files.items():
        if file.reference is None:
            raise Invalid(
                f"{at}task.files.{name}: a submitted task names its files by blob reference; "
                "upload the file (POST /api/v1/blobs/) and give its reference",
                field=f"{at}task.files.{name}",
            )
    notify.check(spec.notify, f"{at}task.notify")
    if spec.callback_url is not None and settings.CALLBACKS:
        notify.check_url(spec.callback_url, f"{at}task.callback_url")
    policies.check(spec, at)
    return Submission(spec, priority, field, rank, after)


def check_blobs(user: User, submissions: list[Submission]) -> set[str]:
    """The blob references of `submissions`; `Invalid` naming a file `user` may not read."""
    wanted = {str(file.reference) for item in submissions for file in item.spec.files.values()}
    found = blobs.readable(user, wanted)
    for item in submissions:
        at = f"{item.field}." if item.field else ""
        for name, file in item.spec.files.items():
            if file.reference not in found:
                raise Invalid(
                    f"{at}task.files.{name}.reference: no such blob; upload it first "
                    f"(got {file.reference!r})",
                    field=f"{at}task.files.{name}.reference",
                )
    return wanted


def row(
    user: User,
    item: Submission,
    batch: Batch | None,
    position: int | None = None,
    state: str = State.QUEUED,
    legacy: bool = False,
    key: str | None = None,
) -> Task:
    """The new task row of `item`: `state`, or waiting when it has dependencies."""
    spec = item.spec
    return Task(
        owner=user,
        state=State.WAITING if item.after and state == State.QUEUED else state,
        rank=item.rank,
        after=[after.to_dict() for after in item.after],
        legacy=legacy,
        submission_key=key,
        priority=item.priority,
        batch=batch,
        position=position,
        max_attempts=settings.MAX_ATTEMPTS,
        spec=spec.to_dict(),
        need_cpus=spec.limits.cpus,
        need_memory=spec.limits.memory,
        need_gpus=spec.limits.gpus,
        need_workspace=spec.limits.workspace,
        need_gpu_memory=spec.limits.gpu_memory,
        exclusive=bool(spec.exclusive),
        needs=needs.key(spec.requires, spec.resources),
    )


def submit(
    user: User,
    submissions: list[Submission],
    *,
    batch: bool,
    legacy: bool = False,
    key: str | None = None,
    told: tuple[Notify, ...] = (),
) -> tuple[Batch | None, list[Task]]:
    """Queue `submissions` all together or none of them; return the batch (which tells `told` of
    its completion) and the tasks.
    `legacy`: they came through the original's API (their callbacks speak its format); `key`:
    the one submission's ``Idempotency-Key`` (`submit_once`)."""
    references = check_blobs(user, submissions)
    now = timezone.now()
    with transaction.atomic():
        if blobs.touch(references, now) != len(references):
            # Garbage collection took a blob between the check and now.
            check_blobs(user, submissions)
            raise Invalid("a file of the task was deleted meanwhile; upload it again")
        group = (
            Batch.objects.create(
                owner=user, size=len(submissions), sealed=now, notify=notify.stored(told)
            )
            if batch
            else None
        )
        positions = range(len(submissions)) if batch else [None] * len(submissions)
        tasks = Task.objects.bulk_create(
            [
                row(user, item, group, at, legacy=legacy, key=key)
                for item, at in zip(submissions, positions, strict=True)
            ]
        )
        add_files(tasks, submissions)
        queued = [task for task in tasks if task.state == State.QUEUED]
        wakeup.queued([task.pk for task in queued])
        link(user, tasks, submissions, now)
    if any(item.after for item in submissions):
        # Dependencies settled at once leave some tasks queued or cancelled: as they are now.
        now_rows = Task.objects.filter(pk__in=[task.pk for task in tasks])
        states = {
            row[0]: row[1:] for row in now_rows.values_list("id", "state", "error", "finished")
        }
        for task in tasks:
            task.state, task.error, task.finished = states[task.pk]
    return group, tasks


def link(
    user: User, tasks: list[Task], submissions: list[Submission], now: datetime, first: int = 0
) -> None:
    """The dependencies of newly created `tasks` (`dependencies.link`)."""
    if any(item.after for item in submissions):
        dependencies.link(
            user,
            tasks,
            [item.after for item in submissions],
            [item.at for item in submissions],
            now,
            first,
        )


def add_files(tasks: list[Task], submissions: list[Submission]) -> None:
    """The input-file rows of newly created `tasks` (blob access and garbage collection)."""
    TaskFile.objects.bulk_create(
        TaskFile(task=task, blob_id=str(file.reference), name=name)
        for task, item in zip(tasks, submissions, strict=True)
        for name, file in item.spec.files.items()
    )


def submit_once(user: User, item: Submission, key: str | None) -> tuple[Task, bool]:
    """Queue one submission and return its task and True; with `key` (the client's
    ``Idempotency-Key``), the task that key already queued and False instead, so that a client
    sending a submission again after a lost answer never makes two. `Conflict` if the key
    queued another submission."""
    if key is not None and (found := _submitted(user, key, item)) is not None:
        return found, False
    try:
        _, tasks = submit(user, [item], batch=False, key=key)
    except IntegrityError:
        # The loser of a race with the same submission sent twice at once: the winner's task.
        found = _submitted(user, key, item) if key is not None else None
        if found is None:
            raise
        return found, False
    return tasks[0], True


def _submitted(user: User, key: str, item: Submission) -> Task | None:
    found = Task.objects.select_related("owner", "node", "batch").filter(
        owner=user, submission_key=key
    )
    task = found.first()
    if task is not None and (
        not policies.submitted_as(task.spec, item.spec)
        or task.priority != item.priority
        or task.after != [after.to_dict() for after in item.after]
    ):
        raise Conflict(
            f"Idempotency-Key: {key!r} queued another submission ({task.key}); "
            "give each submission a key of its own",
            field="Idempotency-Key",
        )
    return task
