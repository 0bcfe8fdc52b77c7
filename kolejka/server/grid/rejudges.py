"""Rejudging many tasks at once: the finished tasks a filter names, each judged again in place
as a single rejudge does (`transitions.rejudge`: same key, earlier runs kept in its history)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from . import batches, transitions
from .errors import Forbidden, Invalid
from .models import FINISHED, Batch, Role, State, Task, User


def matching(user: User, filters: dict[str, Any]) -> QuerySet[Task]:
    """The finished tasks `filters` (``RejudgeRequest``) name: `user`'s own, or for an admin
    anyone's (one owner's with ``owner``). `Forbidden` for a client naming another owner,
    `Invalid` for a batch that does not exist."""
    tasks = Task.objects.filter(state__in=FINISHED)
    owner = filters.get("owner")
    if user.role != Role.ADMIN:
        if owner not in (None, user.username):
            raise Forbidden("owner: only admins rejudge another user's tasks", "owner")
        tasks = tasks.filter(owner=user)
    elif owner is not None:
        tasks = tasks.filter(owner__username=owner)
    if filters.get("state"):
        tasks = tasks.filter(state=filters["state"])
    if filters.get("verdicts"):
        tasks = tasks.filter(state=State.DONE, result__status__in=filters["verdicts"])
    if filters.get("batch"):
        mine = Batch.objects.all() if user.role == Role.ADMIN else Batch.objects.filter(owner=user)
        found = mine.filter(key=filters["batch"]).first()
        if found is None:
            raise Invalid(f"batch: no such batch (got {filters['batch']!r})", field="batch")
        tasks = tasks.filter(batch=found)
    return tasks


def rejudge(user: User, filters: dict[str, Any]) -> int:
    """Judge again every task `matching` names, a chunk per transaction; return how many.
    A task that moved meanwhile (rejudged by someone else) is left as it is."""
    tasks = matching(user, filters).order_by("id")
    tag = filters.get("tag")
    if tag:
        # Node tags live in the task's spec (`requires`), which SQLite cannot search inside.
        rows = tasks.values_list("id", "spec")
        ids = [task_id for task_id, spec in rows if tag in (spec.get("requires") or ())]
    else:
        ids = list(tasks.values_list("id", flat=True))
    return batches.each(ids, transitions.rejudge, FINISHED)
