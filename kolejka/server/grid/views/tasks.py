"""Tasks and batches: submitting, reading, waiting, cancelling, retrying, deleting."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import batches, listing, notify, pending, polls, ranks, rejudges, submit, transitions
from ..errors import Forbidden, Invalid, NotFinished, NotFound
from ..inputs import (
    BatchListQuery,
    BatchOpenRequest,
    BatchPageRequest,
    BatchRerunRequest,
    BatchSubmitRequest,
    LogQuery,
    RankRequest,
    RejudgeRequest,
    ResultWaitQuery,
    SubmitRequest,
    TaskListQuery,
    TaskWaitQuery,
)
from ..models import Batch, State, Task, User
from ..permissions import READERS, SUBMITTERS, Roles, may_change, user_of
from ..serializers import (
    BatchChangedSerializer,
    BatchCreatedSerializer,
    BatchPageSerializer,
    BatchSerializer,
    BatchSummarySerializer,
    ChangedSerializer,
    DeliverySerializer,
    LogSerializer,
    TaskPageSerializer,
    TaskSerializer,
    WhySerializer,
    delivery_log,
    log_resource,
    task_resource,
    why_resource,
)
from .base import GridViewSet

SUBMISSION_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="the client's name for this submission: sent again, the same task answers (200)",
    pattern=SUBMISSION_KEY.pattern,
)


def admitted_all(user: User, rows: list[dict[str, Any]]) -> list[submit.Submission]:
    """The rows of a batch body, each as `submit.admitted` reads one."""
    return [
        submit.admitted(
            user, row["task"], row["priority"], f"tasks[{index}]", row["rank"], tuple(row["after"])
        )
        for index, row in enumerate(rows)
    ]


class TaskViewSet(GridViewSet):
    """``tasks/``: a client's own tasks; inspectors read everyone's, admins change them too."""

    lookup_field = "key"
    missing = "no such task"
    roles: ClassVar[dict[str, Roles]] = {
        "list": READERS,
        "create": SUBMITTERS,
        "batch": SUBMITTERS,
        "retrieve": READERS,
        "result": READERS,
        "why": READERS,
        "log": READERS,
        "destroy": SUBMITTERS,
        "cancel": SUBMITTERS,
        "retry": SUBMITTERS,
        "rejudge": SUBMITTERS,
        "deliveries": READERS,
        "rejudge_many": SUBMITTERS,
        "rank": SUBMITTERS,
    }

    def get_queryset(self) -> QuerySet[Task]:
        return listing.visible_tasks(user_of(self.request))

    def get_object(self) -> Task:
        """The task of the URL if the caller may see it; 404 (not 403) for anyone else's."""
        return listing.visible_task(user_of(self.request), self.lookup())

    @extend_schema(
        operation_id="tasks_list", parameters=[TaskListQuery], responses=TaskPageSerializer
    )
    def list(self, request: Request) -> Response:
        query = self.query(TaskListQuery)
        tasks = listing.filtered_tasks(
            self.get_queryset().order_by("-id"),
            states=[query["state"]] if query.get("state") else None,
            batch=query.get("batch", ""),
            owner=query.get("owner", ""),
        )
        if query.get("cursor"):
            tasks = tasks.filter(id__lt=int(query["cursor"]))
        limit = query["limit"]
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

    @extend_schema(
        request=SubmitRequest,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: TaskSerializer, 200: TaskSerializer},
    )
    def create(self, request: Request) -> Response:
        user = user_of(request)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not SUBMISSION_KEY.fullmatch(key):
            raise Invalid(
                "Idempotency-Key: 1 to 64 letters, digits and ._:- (a UUID, say)",
                field="Idempotency-Key",
            )
        data = self.body(SubmitRequest)
        item = submit.admitted(
            user, data["task"], data["priority"], rank=data["rank"], after=tuple(data["after"])
        )
        task, created = submit.submit_once(user, item, key)
        return Response(task_resource(task, reason=False), status=201 if created else 200)

    @extend_schema(request=BatchSubmitRequest, responses={201: BatchCreatedSerializer})
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> Response:
        user = user_of(request)
        data = self.body(BatchSubmitRequest)
        notify.check(data["notify"], "notify")
        items = admitted_all(user, data["tasks"])
        batch, tasks = submit.submit(user, items, batch=True, told=data["notify"])
        assert batch is not None
        for task in tasks:
            task.batch = batch
        return Response(
            {"batch": batch.key, "tasks": [task_resource(task, reason=False) for task in tasks]},
            status=201,
        )

    @extend_schema(parameters=[TaskWaitQuery], responses=TaskSerializer)
    def retrieve(self, request: Request, key: str) -> Response:
        task = self.get_object()
        query = self.query(TaskWaitQuery)
        if query.get("state"):
            task = polls.moved(self.get_queryset(), task, query["state"], query["wait"])
        return Response(task_resource(task))

    @extend_schema(
        parameters=[ResultWaitQuery],
        responses={200: OpenApiResponse(description="kolejka_result.json, files as references")},
    )
    @action(detail=True, methods=["get"])
    def result(self, request: Request, key: str) -> Response:
        task = self.get_object()
        task = polls.finished(self.get_queryset(), task, self.query(ResultWaitQuery)["wait"])
        if task.state != State.DONE:
            raise NotFinished(f"the task is {task.state}, it has no result", state=task.state)
        return Response(task.result)

    @extend_schema(responses=WhySerializer)
    @action(detail=True, methods=["get"])
    def why(self, request: Request, key: str) -> Response:
        return Response(why_resource(pending.explain(self.get_object())))

    @extend_schema(parameters=[LogQuery], responses=LogSerializer)
    @action(detail=True, methods=["get"])
    def log(self, request: Request, key: str) -> Response:
        """What the task printed on `stream` from `offset`: while it runs, as its node sends
        it; after the end, its result's file (or, cancelled or failed, what was sent)."""
        query = self.query(LogQuery)
        part = polls.log(
            self.get_queryset(),
            self.get_object(),
            query["stream"],
            query["offset"],
            query["limit"],
            query["wait"],
        )
        return Response(log_resource(part))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, key: str) -> Response:
        self._change(transitions.delete)
        return Response(status=204)

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, key: str) -> Response:
        return Response(task_resource(self._change(transitions.cancel)))

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, key: str) -> Response:
        return Response(task_resource(self._change(transitions.retry)))

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def rejudge(self, request: Request, key: str) -> Response:
        """Judge a finished task again in place, whatever its verdict; earlier runs stay in its
        `history`."""
        return Response(task_resource(self._change(transitions.rejudge)))

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, key: str) -> Response:
        """The task's notifications and callbacks, oldest first: where, what, how they went."""
        return Response(delivery_log(self.get_object().deliveries.all()))

    @extend_schema(
        operation_id="tasks_rejudge_many",
        request=RejudgeRequest,
        responses=ChangedSerializer,
    )
    @action(detail=False, methods=["post"], url_path="rejudge")
    def rejudge_many(self, request: Request) -> Response:
        """Judge again in place every finished task the filter names (your own; an admin's,
        anyone's); earlier runs stay in their `history`."""
        data = self.body(RejudgeRequest)
        return Response({"changed": rejudges.rejudge(user_of(request), data)})

    @extend_schema(request=RankRequest, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def rank(self, request: Request, key: str) -> Response:
        """Set the task's place in its owner's own order (`rank`, higher first)."""
        rank = self.body(RankRequest)["rank"]
        return Response(task_resource(self._change(lambda task, now: ranks.set_rank(task, rank))))

    def _change(self, change: Callable[[Task, datetime], None]) -> Task:
        """Apply `change` to the task of the URL (`listing.change_task`)."""
        return listing.change_task(user_of(self.request), self.get_object(), change)


class BatchViewSet(GridViewSet):
    """``batches/``: batches of any size, opened, filled page by page and sealed (`batches`);
    their progress; re-running, cancelling and purging them. Read as tasks are: their owner,
    inspectors and admins; changed by their owner and admins."""

    lookup_field = "key"
    missing = "no such batch"
    roles: ClassVar[dict[str, Roles]] = {
        "list": READERS,
        "create": SUBMITTERS,
        "retrieve": READERS,
        "tasks": SUBMITTERS,
        "seal": SUBMITTERS,
        "rerun": SUBMITTERS,
        "cancel": SUBMITTERS,
        "destroy": SUBMITTERS,
        "deliveries": READERS,
        "rank": SUBMITTERS,
    }

    def get_queryset(self) -> QuerySet[Batch]:
        return listing.visible_batches(user_of(self.request))

    def get_object(self) -> Batch:
        batch = self.get_queryset().filter(key=self.lookup()).first()
        if batch is None:
            raise NotFound(self.missing)
        return batch

    def _changed(self) -> Batch:
        """The batch of the URL, if the caller may change it."""
        batch = self.get_object()
        if not may_change(user_of(self.request), batch.owner_id):
            raise Forbidden("inspectors read batches; only their owner or an admin may change them")
        return batch

    @extend_schema(
        operation_id="batches_list", parameters=[BatchListQuery], responses=BatchPageSerializer
    )
    def list(self, request: Request) -> Response:
        query = self.query(BatchListQuery)
        found = self.get_queryset().order_by("-id")
        if query.get("state"):
            found = found.filter(state=query["state"])
        if query.get("owner"):
            found = found.filter(owner__username=query["owner"])
        if query.get("cursor"):
            found = found.filter(id__lt=int(query["cursor"]))
        limit = query["limit"]
        page = list(found[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return Response(
            {
                "results": [batches.summary(batch) for batch in page],
                "next": str(page[-1].pk) if more else None,
            }
        )

    @extend_schema(request=BatchOpenRequest, responses={201: BatchSerializer})
    def create(self, request: Request) -> Response:
        told = self.body(BatchOpenRequest)["notify"]
        notify.check(told, "notify")
        batch = batches.open_batch(user_of(request), told)
        return Response(batches.progress(batch), status=201)

    @extend_schema(responses=BatchSerializer)
    def retrieve(self, request: Request, key: str) -> Response:
        return Response(batches.progress(self.get_object()))

    @extend_schema(request=BatchPageRequest, responses={201: BatchSummarySerializer})
    @action(detail=True, methods=["post"])
    def tasks(self, request: Request, key: str) -> Response:
        """Add a page of tasks to an open batch, in one transaction."""
        batch = self._changed()
        data = self.body(BatchPageRequest)
        items = admitted_all(user_of(request), data["tasks"])
        return Response(batches.summary(batches.add_page(batch, data["start"], items)), status=201)

    @extend_schema(request=None, responses=BatchSerializer)
    @action(detail=True, methods=["post"])
    def seal(self, request: Request, key: str) -> Response:
        """Queue all the tasks of an open batch at once; a sealed batch takes no more pages."""
        return Response(batches.progress(batches.seal(self._changed())))

    @extend_schema(request=BatchRerunRequest, responses=BatchChangedSerializer)
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, key: str) -> Response:
        """Run finished tasks of the batch again in place (same keys, a new attempt)."""
        batch = self._changed()
        data = self.body(BatchRerunRequest)
        changed = batches.rerun(batch, data["which"], data["verdicts"])
        return Response({"batch": batch.key, "changed": changed})

    @extend_schema(request=RankRequest, responses=BatchChangedSerializer)
    @action(detail=True, methods=["post"])
    def rank(self, request: Request, key: str) -> Response:
        """Set the rank (the owner's own order) of every task of the batch not finished yet."""
        batch = self._changed()
        changed = ranks.set_batch_rank(batch, self.body(RankRequest)["rank"])
        return Response({"batch": batch.key, "changed": changed})

    @extend_schema(request=None, responses=BatchChangedSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, key: str) -> Response:
        batch = self._changed()
        return Response({"batch": batch.key, "changed": batches.cancel(batch)})

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, key: str) -> Response:
        """The batch's completion notifications, oldest first."""
        return Response(delivery_log(self.get_object().deliveries.all()))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, key: str) -> Response:
        """Purge the batch: its tasks, their results and the batch itself."""
        batches.purge(self._changed())
        return Response(status=204)
