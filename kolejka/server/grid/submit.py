"""Submitting tasks: the common format's checks, blob access, and one transaction per batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kolejka.common import SpecError
from kolejka.common import Task as TaskSpec

from . import backlog, blobs, blobstore, wakeup
from .errors import Forbidden, Invalid, spec_error
from .models import Batch, Role, Task, TaskFile, User

MAX_BATCH = 1000


@dataclass(frozen=True)
class Submission:
    spec: TaskSpec
    priority: int
    field: str  # where in the request body it came from, for error messages


def parse(user: User, data: object, field: str = "") -> Submission:
    """Check one ``{"task": ..., "priority": ...}`` entry; raise `Invalid` naming the field."""
    at = f"{field}." if field else ""
    if not isinstance(data, Mapping):
        raise Invalid(f"{field or 'body'}: must be a JSON object", field=field or None)
    unknown = sorted(set(data) - {"task", "priority"})
    if unknown:
        raise Invalid(f"{at}{unknown[0]}: unknown field; known: priority, task", at + unknown[0])
    if "task" not in data:
        raise Invalid(f"{at}task: is required", field=f"{at}task")
    try:
        spec = TaskSpec.from_dict(data["task"])
    except SpecError as error:
        raise spec_error(error, f"{at}task") from None
    priority = data.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 2**31 - 1:
        raise Invalid(f"{at}priority: must be a whole number (got {priority!r})", f"{at}priority")
    if priority > 0 and user.role != Role.ADMIN:
        raise Forbidden(f"{at}priority: only admins may set a priority above 0", f"{at}priority")
    for name, file in spec.files.items():
        if file.reference is None:
            raise Invalid(
                f"{at}task.files.{name}: a submitted task names its files by blob reference; "
                "upload the file (POST /api/v1/blobs/) and give its reference",
                field=f"{at}task.files.{name}",
            )
        if not blobstore.is_reference(file.reference):
            raise Invalid(
                f"{at}task.files.{name}.reference: must be a sha256 in lower-case hex "
                f"(got {file.reference!r})",
                field=f"{at}task.files.{name}.reference",
            )
    return Submission(spec, priority, field)


def _check_blobs(user: User, submissions: list[Submission]) -> set[str]:
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


def _row(user: User, item: Submission, batch: Batch | None) -> Task:
    spec = item.spec
    return Task(
        owner=user,
        priority=item.priority,
        batch=batch,
        max_attempts=settings.MAX_ATTEMPTS,
        spec=spec.to_dict(),
        need_cpus=spec.limits.cpus,
        need_memory=spec.limits.memory,
        need_gpus=spec.limits.gpus,
        need_workspace=spec.limits.workspace,
        exclusive=bool(spec.exclusive),
        labelled=bool(spec.requires or spec.resources),
    )


def submit(
    user: User, submissions: list[Submission], *, batch: bool
) -> tuple[Batch | None, list[Task]]:
    """Queue `submissions` all together or none of them; return the batch and the tasks."""
    references = _check_blobs(user, submissions)
    now = timezone.now()
    with transaction.atomic():
        if blobs.touch(references, now) != len(references):
            # Garbage collection took a blob between the check and now.
            _check_blobs(user, submissions)
            raise Invalid("a file of the task was deleted meanwhile; upload it again")
        group = Batch.objects.create(owner=user) if batch else None
        tasks = Task.objects.bulk_create([_row(user, item, group) for item in submissions])
        TaskFile.objects.bulk_create(
            TaskFile(task=task, blob_id=str(file.reference), name=name)
            for task, item in zip(tasks, submissions, strict=True)
            for name, file in item.spec.files.items()
        )
        backlog.add(Counter((user.pk, task.priority) for task in tasks))
        wakeup.notify(wakeup.QUEUE)
    return group, tasks


def body_tasks(data: Any) -> list[Any]:
    """The ``tasks`` list of a batch body."""
    if not isinstance(data, Mapping):
        raise Invalid("the body must be a JSON object")
    unknown = sorted(set(data) - {"tasks"})
    if unknown:
        raise Invalid(f"{unknown[0]}: unknown field; known: tasks", field=unknown[0])
    items = data.get("tasks")
    if not isinstance(items, list) or not items:
        raise Invalid("tasks: must be a non-empty list of tasks", field="tasks")
    if len(items) > MAX_BATCH:
        raise Invalid(f"tasks: at most {MAX_BATCH} tasks a batch (got {len(items)})", "tasks")
    return items
