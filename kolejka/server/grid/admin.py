"""The Django admin: every table to look at, and changes only through the rules the API uses.

A task's queue columns (state, attempts, lease, node, result) are read-only: moving a task is an
action (requeue, cancel, rejudge) that calls `transitions` under the task's row lock, as the API
does, so the admin cannot leave the queue's bookkeeping (the backlog, leases, wake-ups) behind.
Deleting a task goes through `transitions.delete`; leases, the backlog and wake-ups are derived
and read-only; nodes are drained and undrained by actions calling `nodes.drain`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException

from . import nodes, transitions
from .models import (
    ACTIVE,
    Batch,
    Blob,
    BlobGrant,
    Delivery,
    Image,
    Lease,
    Node,
    Task,
    TaskFile,
    User,
    Wakeup,
)


class ReadOnly(admin.ModelAdmin[Any]):
    """Tables the grid derives: shown, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class KolejkaUserAdmin(UserAdmin[User]):
    list_display = ("username", "role", "quota", "is_active", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (*(UserAdmin.fieldsets or ()), ("kolejka", {"fields": ("role", "quota")}))


def _each(
    request: HttpRequest,
    tasks: QuerySet[Task],
    change: Callable[[Task, datetime], None],
    done: str,
) -> None:
    """Apply `change` to each task under its row lock; report what was done and what refused."""
    moved = 0
    for task_id in tasks.values_list("id", flat=True):
        with transaction.atomic():
            task = transitions.locked(Task.objects.filter(pk=task_id)).first()
            if task is None:
                continue
            try:
                change(task, timezone.now())
            except APIException as refusal:
                transaction.set_rollback(True)
                messages.warning(request, f"task {task.key}: {refusal.detail}")
                continue
            moved += 1
    if moved:
        messages.success(request, f"{moved} task(s) {done}")


def _requeue(task: Task, now: datetime) -> None:
    """A held task is taken back from its node; a failed or cancelled one is retried."""
    if task.state in ACTIVE:
        transitions.take_back(task, now)
    else:
        transitions.retry(task, now)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin[Task]):
    list_display = ("key", "owner", "state", "priority", "attempts", "node", "created")
    list_filter = ("state",)
    search_fields = ("key", "owner__username")
    raw_id_fields = ("owner", "batch")
    actions = ("requeue", "cancel", "rejudge")
    # The queue's columns move only through the actions (transitions), never by an edit.
    readonly_fields = (
        "key",
        "owner",
        "state",
        "priority",
        "batch",
        "attempts",
        "max_attempts",
        "node",
        "lease",
        "spec",
        "result",
        "error",
        "created",
        "updated",
        "started",
        "finished",
        "need_cpus",
        "need_memory",
        "need_gpus",
        "need_workspace",
        "need_gpu_memory",
        "exclusive",
        "needs",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks come through the API, which checks them

    @admin.action(description="Requeue (take back from the node, or retry if failed/cancelled)")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        _each(request, queryset, _requeue, "queued again")

    @admin.action(description="Cancel")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        _each(request, queryset, transitions.cancel, "cancelled")

    @admin.action(description="Rejudge (run a finished task again from the start)")
    def rejudge(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        _each(request, queryset, transitions.rejudge, "queued to be judged again")

    def delete_model(self, request: HttpRequest, obj: Task) -> None:
        self.delete_queryset(request, Task.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        _each(request, queryset, transitions.delete, "deleted")


@admin.register(Lease)
class LeaseAdmin(ReadOnly):
    list_display = ("id", "task", "node", "attempt", "expires", "ended", "outcome")
    list_filter = ("outcome",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly):
    """Notifications and callbacks: what was sent where, and how it went (webhook secrets are
    not shown: each user reads and rotates their own through the API)."""

    list_display = ("id", "task", "batch", "event", "channel", "target", "attempts", "delivered")
    list_filter = ("event", "channel", "gave_up")
    search_fields = ("task__key", "batch__key", "target")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin[Node]):
    list_display = ("name", "owner", "slots", "draining", "last_seen")
    list_filter = ("draining",)
    readonly_fields = ("draining", "last_seen", "created")
    actions = ("drain", "undrain")

    @admin.action(description="Drain (give no new tasks)")
    def drain(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        for node in queryset:
            nodes.drain(node, True)

    @admin.action(description="Undrain")
    def undrain(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        for node in queryset:
            nodes.drain(node, False)


@admin.register(Blob)
class BlobAdmin(ReadOnly):
    list_display = ("reference", "size", "created", "touched")
    search_fields = ("reference",)


@admin.register(BlobGrant)
class BlobGrantAdmin(ReadOnly):
    list_display = ("user", "blob", "created")


@admin.register(TaskFile)
class TaskFileAdmin(ReadOnly):
    list_display = ("task", "name", "blob", "output")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin[Image]):
    list_display = ("name", "blob", "updated")
    raw_id_fields = ("blob",)


@admin.register(Batch)
class BatchAdmin(ReadOnly):
    list_display = ("key", "owner", "created")


@admin.register(Wakeup)
class WakeupAdmin(ReadOnly):
    list_display = ("id", "topic", "created")
