"""Nodes, claims and leases: the foremen's side of the API."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from kolejka.common import Capacity, Limits

from .. import claims, health, leases, listing, logs, metrics, nodes, polls
from ..inputs import (
    ClaimRequest,
    DrainRequest,
    FailRequest,
    HealthRequest,
    HeartbeatRequest,
    LogAppendRequest,
    NodeRequest,
    ResultQuery,
    ResultRequest,
    node_name,
)
from ..models import Lease, Node
from ..permissions import ADMINS, EVERYONE, FOREMEN, Roles, user_of
from ..serializers import (
    ClaimSerializer,
    HeartbeatSerializer,
    LeaseSerializer,
    LogAppendedSerializer,
    NodePageSerializer,
    NodeSerializer,
    ResultAcceptedSerializer,
    TaskSerializer,
    task_resource,
)
from .base import GridViewSet


class NodeViewSet(GridViewSet):
    """``nodes/``: a foreman registers its nodes and claims tasks for them; everyone lists them;
    admins drain and forget them."""

    lookup_field = "name"
    lookup_pattern = re.compile(r"[^\x00/]{1,255}")
    missing = "no such node; register it first (PUT /api/v1/nodes/{name}/)"
    roles: ClassVar[dict[str, Roles]] = {
        "list": EVERYONE,
        "update": FOREMEN,
        "drain": ADMINS,
        "destroy": ADMINS,
        "health": FOREMEN,
        "claim": FOREMEN,
    }

    def get_queryset(self) -> QuerySet[Node]:
        return listing.visible_nodes(user_of(self.request))

    def shown(self, node: Node | QuerySet[Node], many: bool = False) -> Any:
        context = {"viewer": user_of(self.request), "now": timezone.now()}
        return NodeSerializer(node, many=many, context=context).data

    @extend_schema(responses=NodePageSerializer)
    def list(self, request: Request) -> Response:
        return Response({"results": self.shown(self.get_queryset(), many=True)})

    @extend_schema(request=NodeRequest, responses=NodeSerializer)
    def update(self, request: Request, name: str) -> Response:
        name = node_name(str(self.kwargs["name"]))
        data = self.body(NodeRequest)
        node = nodes.register(
            user_of(request),
            name,
            data.get("capacity") or Capacity.from_dict({}),
            data.get("defaults") or Limits(),
            data.get("tags", []),
            data["slots"],
        )
        return Response(self.shown(node))

    @extend_schema(request=DrainRequest, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def drain(self, request: Request, name: str) -> Response:
        node = nodes.node_of(user_of(request), self.lookup())
        node = nodes.drain(node, self.body(DrainRequest)["drain"])
        return Response(self.shown(node))

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        nodes.forget(nodes.node_of(user_of(request), self.lookup()))
        return Response(status=204)

    @extend_schema(request=HealthRequest, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def health(self, request: Request, name: str) -> Response:
        node = nodes.node_of(user_of(request), self.lookup(), admins=False)
        node = health.report(node, self.body(HealthRequest)["problems"])
        return Response(self.shown(node))

    @extend_schema(request=ClaimRequest, responses=ClaimSerializer)
    @action(detail=True, methods=["post"])
    def claim(self, request: Request, name: str) -> Response:
        node = nodes.node_of(user_of(request), self.lookup(), admins=False)
        data = self.body(ClaimRequest)
        # Seen when the claim starts as well as when it ends: a long-poll is no silence.
        nodes.called_in(node)
        free = data.get("free") or nodes.free_of(node)
        idle = data.get("idle")
        idle = nodes.idle(node) if idle is None else idle
        claimed = listed(polls.claim(node, free, idle, data["wait"], data["max"]))
        if not claimed:
            return Response({"lease": None, "task": None, "claimed": [], "drain": nodes.seen(node)})
        return Response({**claimed[0], "claimed": claimed, "drain": False})


def listed(claimed: list[claims.Claimed]) -> list[dict[str, Any]]:
    """`claimed` as a claim's answer lists them."""
    return [
        {"lease": LeaseSerializer(one.lease).data, "task": task_resource(one.task)}
        for one in claimed
    ]


class LeaseViewSet(GridViewSet):
    """``leases/``: heartbeats and reports of the foreman whose node holds the lease."""

    lookup_field = "lease_id"
    missing = "no such lease"
    roles: ClassVar[dict[str, Roles]] = {
        "heartbeat": FOREMEN,
        "result": FOREMEN,
        "fail": FOREMEN,
        "release": FOREMEN,
        "log": FOREMEN,
    }

    def get_object(self) -> Lease:
        return leases.lease_of(user_of(self.request), str(self.kwargs["lease_id"]))

    @extend_schema(request=HeartbeatRequest, responses=HeartbeatSerializer)
    @action(detail=True, methods=["post"])
    def heartbeat(self, request: Request, lease_id: str) -> Response:
        lease = self.get_object()
        beat = leases.heartbeat(lease, self.body(HeartbeatRequest)["running"])
        return Response({"expires": beat.expires, "cancel": beat.cancel})

    @extend_schema(
        request=ResultRequest, parameters=[ResultQuery], responses={201: ResultAcceptedSerializer}
    )
    @action(detail=True, methods=["post"])
    def result(self, request: Request, lease_id: str) -> Response:
        lease = self.get_object()
        count = self.query(ResultQuery)["claim"]
        task = leases.accept_result(lease, user_of(request), self.body(ResultRequest))
        if task.started is not None and task.finished is not None:
            metrics.RUN_TIME.observe((task.finished - task.started).total_seconds())
        metrics.RESULTS.labels(str((task.result or {}).get("status"))).inc()
        answer = task_resource(task)
        if count:
            # The next tasks in the same round trip: a claim that does not wait.
            node = lease.node
            nodes.called_in(node)
            answer["claimed"] = listed(
                polls.claim(node, nodes.free_of(node), nodes.idle(node), 0, count)
            )
        return Response(answer, status=201)

    @extend_schema(request=FailRequest, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def fail(self, request: Request, lease_id: str) -> Response:
        lease = self.get_object()
        data = self.body(FailRequest)
        return Response(task_resource(leases.fail(lease, data["error"], data["retry"])))

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, lease_id: str) -> Response:
        return Response(task_resource(leases.release(self.get_object())))

    @extend_schema(request=LogAppendRequest, responses=LogAppendedSerializer)
    @action(detail=True, methods=["post"])
    def log(self, request: Request, lease_id: str) -> Response:
        """Append a chunk of the running task's stdout or stderr (`logs.append`)."""
        data = self.body(LogAppendRequest)
        end = logs.append(
            self.get_object(), data["stream"], data["offset"], data["data"], data["truncated"]
        )
        return Response({"next": end})
