from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import pending, submit, transitions, wakeup
from ..errors import NotFinished, NotFound
from ..models import FINISHED, Batch, State, Task, User
from ..params import choice, page, wait_seconds
from ..permissions import SUBMITTERS, user_of
from ..serializers import (
    BatchCreatedSerializer,
    BatchSerializer,
    BatchSubmitSerializer,
    SubmitSerializer,
    TaskPageSerializer,
    TaskSerializer,
    task_resource,
)

STATES = {str(state) for state in State}


def visible_tasks(user: User) -> QuerySet[Task]:
    tasks = Task.objects.select_related("owner", "node", "batch")
    return tasks if user.sees_everything else tasks.filter(owner=user)


def task_of(user: User, key: str) -> Task:
    """The task `key` if `user` may see it; 404 (not 403) for anyone else's."""
    task = visible_tasks(user).filter(key=key).first()
    if task is None:
        raise NotFound("no such task")
    return task


WAIT = OpenApiParameter("wait", float, description="long-poll: seconds to wait, at most 60")


class TaskListView(APIView):
    def get_permissions(self) -> Sequence[Any]:
        if self.request.method == "POST":
            return [SUBMITTERS()]
        return super().get_permissions()

    @extend_schema(
        operation_id="tasks_list",
        parameters=[
            OpenApiParameter("state", str, enum=sorted(STATES)),
            OpenApiParameter("batch", str),
            OpenApiParameter("owner", str, description="inspectors and admins"),
            OpenApiParameter("limit", int),
            OpenApiParameter("cursor", str),
        ],
        responses={200: TaskPageSerializer},
    )
    def get(self, request: Request) -> Response:
        user = user_of(request)
        limit, cursor = page(request)
        tasks = visible_tasks(user).order_by("-id")
        state = choice(request.query_params.get("state"), "state", STATES)
        if state:
            tasks = tasks.filter(state=state)
        if request.query_params.get("batch"):
            tasks = tasks.filter(batch__key=request.query_params["batch"])
        if request.query_params.get("owner"):
            tasks = tasks.filter(owner__username=request.query_params["owner"])
        if cursor is not None:
            tasks = tasks.filter(id__lt=cursor)
        found = list(tasks[: limit + 1])
        more = len(found) > limit
        found = found[:limit]
        reasons = pending.Reasons()
        return Response(
            {
                "results": [task_resource(task, reasons) for task in found],
                "next": str(found[-1].pk) if more else None,
            }
        )

    @extend_schema(request=SubmitSerializer, responses={201: TaskSerializer})
    def post(self, request: Request) -> Response:
        user = user_of(request)
        item = submit.parse(user, request.data)
        _, tasks = submit.submit(user, [item], batch=False)
        return Response(task_resource(tasks[0]), status=201)


class BatchSubmitView(APIView):
    permission_classes = (SUBMITTERS,)

    @extend_schema(request=BatchSubmitSerializer, responses={201: BatchCreatedSerializer})
    def post(self, request: Request) -> Response:
        user = user_of(request)
        items = [
            submit.parse(user, item, f"tasks[{index}]")
            for index, item in enumerate(submit.body_tasks(request.data))
        ]
        batch, tasks = submit.submit(user, items, batch=True)
        assert batch is not None
        for task in tasks:
            task.batch = batch
        reasons = pending.Reasons()
        return Response(
            {"batch": batch.key, "tasks": [task_resource(task, reasons) for task in tasks]},
            status=201,
        )


class TaskView(APIView):
    @extend_schema(
        parameters=[WAIT, OpenApiParameter("state", str, enum=sorted(STATES))],
        responses={200: TaskSerializer},
    )
    def get(self, request: Request, key: str) -> Response:
        user = user_of(request)
        task = task_of(user, key)
        wait = wait_seconds(request.query_params.get("wait"))
        state = choice(request.query_params.get("state"), "state", STATES)
        if wait and state and task.state == state:
            moved = wakeup.long_poll(
                [wakeup.task_topic(task.pk)],
                wait,
                lambda: visible_tasks(user).filter(pk=task.pk).exclude(state=state).first(),
            )
            task = moved or task_of(user, key)
        return Response(task_resource(task))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key: str) -> Response:
        user = user_of(request)
        task = task_of(user, key)
        with transaction.atomic():
            locked = transitions.locked(Task.objects.filter(pk=task.pk)).first()
            if locked is not None:
                if locked.state not in FINISHED:
                    transitions.cancel(locked, timezone.now())
                locked.delete()
        return Response(status=204)


def _transition(request: Request, key: str, change: Callable[[Task, datetime], None]) -> Response:
    """Apply `change` to the task `key` under its row lock; answer with the task as it is now."""
    user = user_of(request)
    task = task_of(user, key)
    with transaction.atomic():
        locked = transitions.locked(Task.objects.filter(pk=task.pk)).get()
        change(locked, timezone.now())
    return Response(task_resource(task_of(user, key)))


class TaskCancelView(APIView):
    @extend_schema(request=None, responses={200: TaskSerializer})
    def post(self, request: Request, key: str) -> Response:
        return _transition(request, key, transitions.cancel)


class TaskRetryView(APIView):
    @extend_schema(request=None, responses={200: TaskSerializer})
    def post(self, request: Request, key: str) -> Response:
        return _transition(request, key, transitions.retry)


class TaskResultView(APIView):
    @extend_schema(parameters=[WAIT], responses={200: dict})
    def get(self, request: Request, key: str) -> Response:
        user = user_of(request)
        task = task_of(user, key)
        wait = wait_seconds(request.query_params.get("wait"))
        if wait and task.state not in FINISHED:
            task = (
                wakeup.long_poll(
                    [wakeup.task_topic(task.pk)],
                    wait,
                    lambda: visible_tasks(user).filter(pk=task.pk, state__in=FINISHED).first(),
                )
                or task
            )
        if task.state != State.DONE:
            raise NotFinished(f"the task is {task.state}, it has no result", state=task.state)
        return Response(task.result)


class BatchView(APIView):
    @extend_schema(responses={200: BatchSerializer})
    def get(self, request: Request, key: str) -> Response:
        user = user_of(request)
        batches = Batch.objects.filter(key=key)
        if not user.sees_everything:
            batches = batches.filter(owner=user)
        batch = batches.first()
        if batch is None:
            raise NotFound("no such batch")
        counts = dict(
            Task.objects.filter(batch=batch)
            .values("state")
            .annotate(n=Count("id"))
            .values_list("state", "n")
        )
        return Response(
            {
                "batch": batch.key,
                "total": sum(counts.values()),
                "states": {state: counts.get(state, 0) for state in sorted(STATES)},
            }
        )
