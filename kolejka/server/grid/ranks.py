"""The owner's own order of their queued tasks (`Task.rank`): set at submission, changed later
for one task or a whole batch. It orders a task only among its owner's tasks of its priority
(`claims.py`), so any owner may set any rank."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import FINISHED, Batch, Task


def set_rank(task: Task, rank: int) -> None:
    """Give the locked `task` `rank` (a finished one keeps it for when it runs again)."""
    Task.objects.filter(pk=task.pk).update(rank=rank, updated=timezone.now())


def set_batch_rank(batch: Batch, rank: int) -> int:
    """Give every unfinished task of `batch` `rank`, in one statement; return how many."""
    now: datetime = timezone.now()
    with transaction.atomic():
        tasks = Task.objects.filter(batch=batch).exclude(state__in=FINISHED)
        return tasks.update(rank=rank, updated=now)
