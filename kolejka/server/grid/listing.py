"""What a user sees and may change: the tasks, batches and nodes of their lists, the filters of
those lists, and a change to one task. The API's viewsets and the web board (`kolejka.server.board`)
both read them here, so that a user sees and changes the same things through either."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone

from . import transitions
from .errors import Forbidden, NotFound
from .models import STAGED, Batch, Node, Role, Task, User
from .permissions import may_change


def visible_tasks(user: User) -> QuerySet[Task]:
    """The tasks `user` may see: a client their own, inspectors and admins everyone's; never a
    task of a batch still open."""
    tasks = Task.objects.select_related("owner", "node", "batch").exclude(state=STAGED)
    return tasks if user.sees_everything else tasks.filter(owner=user)


def visible_task(user: User, key: str) -> Task:
    """The task `key` if `user` may see it; `NotFound` (not `Forbidden`) for anyone else's."""
    task = visible_tasks(user).filter(key=key).first()
    if task is None:
        raise NotFound("no such task")
    return task


def filtered_tasks(
    tasks: QuerySet[Task],
    *,
    states: list[str] | None = None,
    batch: str = "",
    owner: str = "",
    verdict: str = "",
    tag: str = "",
    key: str = "",
) -> QuerySet[Task]:
    """`tasks` narrowed by each filter given: their state in `states`, the batch's key, the
    owner's username, the result's status, a tag their nodes must have (``requires``), the
    beginning of their key."""
    if states:
        tasks = tasks.filter(state__in=states)
    if batch:
        tasks = tasks.filter(batch__key=batch)
    if owner:
        tasks = tasks.filter(owner__username=owner)
    if verdict:
        tasks = tasks.filter(result__status=verdict)
    if tag:
        # The JSON text of the list holds the tag quoted (tags have no quotes): one lookup on
        # both databases, where SQLite has no JSON `contains`.
        tasks = tasks.alias(requires=KT("spec__requires")).filter(requires__contains=f'"{tag}"')
    if key:
        tasks = tasks.filter(key__startswith=key)
    return tasks


def change_task(user: User, task: Task, change: Callable[[Task, datetime], None]) -> Task:
    """Apply `change` (a `transitions` function) to `task`, one `user` sees, under its row lock;
    the task as it is now. `Forbidden` unless `user` may change it (`may_change`)."""
    if not may_change(user, task.owner_id):
        raise Forbidden("inspectors read tasks; only their owner or an admin may change them")
    with transaction.atomic():
        # Loser of a race (the task moved on meanwhile): `change` sees its state now and
        # refuses or does nothing, as for any other call.
        locked = transitions.locked(Task.objects.filter(pk=task.pk)).first()
        if locked is not None:
            change(locked, timezone.now())
    return visible_tasks(user).filter(pk=task.pk).first() or task


def visible_batches(user: User) -> QuerySet[Batch]:
    """The batches `user` may see: as for tasks."""
    found = Batch.objects.select_related("owner")
    return found if user.sees_everything else found.filter(owner=user)


def visible_nodes(user: User) -> QuerySet[Node]:
    """The nodes `user` sees, by name: a foreman its own, everyone else all of them."""
    found = Node.objects.order_by("name")
    return found.filter(owner=user) if user.role == Role.FOREMAN else found
