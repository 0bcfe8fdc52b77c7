from __future__ import annotations

import re

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kolejka.common import Capacity, Demand, Limits, SpecError
from kolejka.common import Task as TaskSpec

from .. import claims, health, leases, wakeup
from ..errors import Conflict, Invalid, NotFound, spec_error
from ..models import Lease, Node, Role, Task, User
from ..params import body_object, flag, wait_seconds
from ..permissions import ADMINS, FOREMEN, roles, user_of
from ..serializers import (
    ClaimRequestSerializer,
    ClaimSerializer,
    DrainSerializer,
    FailRequestSerializer,
    HealthRequestSerializer,
    HeartbeatRequestSerializer,
    HeartbeatSerializer,
    LeaseSerializer,
    NodePageSerializer,
    NodeRequestSerializer,
    NodeSerializer,
    TaskSerializer,
    task_resource,
)

NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
NODE_READERS = roles(Role.FOREMAN, Role.INSPECTOR, Role.ADMIN)


def node_of(user: User, name: str) -> Node:
    """`user`'s node `name` (any node for admins); 404 for anyone else's."""
    nodes = Node.objects.filter(name=name)
    if user.role != Role.ADMIN:
        nodes = nodes.filter(owner=user)
    node = nodes.first()
    if node is None:
        raise NotFound("no such node")
    return node


def own_node(user: User, name: str) -> Node:
    """The node `name` that foreman `user` registered; 404 otherwise."""
    node = Node.objects.filter(name=name, owner=user).first()
    if node is None:
        raise NotFound("no such node; register it first (PUT /api/v1/nodes/{name}/)")
    return node


def _tags(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise Invalid("tags: must be a list of non-empty strings", field="tags")
    return sorted(set(value))


def _slots(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10000:
        raise Invalid(f"slots: must be a whole number from 1 to 10000 (got {value!r})", "slots")
    return value


class NodeListView(APIView):
    permission_classes = (NODE_READERS,)

    @extend_schema(responses={200: NodePageSerializer})
    def get(self, request: Request) -> Response:
        user = user_of(request)
        nodes = Node.objects.order_by("name")
        if not user.sees_everything:
            nodes = nodes.filter(owner=user)
        return Response({"results": NodeSerializer(nodes, many=True).data})


class NodeView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=NodeRequestSerializer, responses={200: NodeSerializer})
    def put(self, request: Request, name: str) -> Response:
        user = user_of(request)
        if not NODE_NAME.match(name):
            raise Invalid(
                "name: a node name is letters, digits, '.', '_' and '-', at most 255", "name"
            )
        data = body_object(request, {"capacity", "tags", "defaults", "slots"})
        try:
            capacity = Capacity.from_dict(data.get("capacity") or {}, "capacity")
            defaults = Limits.from_dict(data.get("defaults") or {}, "defaults")
        except SpecError as error:
            raise spec_error(error, "") from None
        fields = {
            "capacity": capacity.to_dict(),
            "defaults": defaults.to_dict(),
            "tags": _tags(data.get("tags", [])),
            "slots": _slots(data.get("slots", 1)),
        }
        with transaction.atomic():
            node, created = Node.objects.get_or_create(
                name=name, defaults={"owner": user, **fields}
            )
            if not created:
                if node.owner_id != user.pk:
                    raise Conflict(f"the node name {name!r} belongs to another foreman", "name")
                for key, value in fields.items():
                    setattr(node, key, value)
                node.save()
            # A node that grew may now take tasks others are waiting for.
            wakeup.notify(wakeup.QUEUE)
        return Response(NodeSerializer(node).data)


class NodeDrainView(APIView):
    permission_classes = (ADMINS,)

    @extend_schema(request=DrainSerializer, responses={200: NodeSerializer})
    def post(self, request: Request, name: str) -> Response:
        node = node_of(user_of(request), name)
        data = body_object(request, {"drain"})
        node.draining = flag(data.get("drain"), "drain", True)
        with transaction.atomic():
            node.save(update_fields=["draining"])
            wakeup.notify(wakeup.QUEUE)
        return Response(NodeSerializer(node).data)


class NodeHealthView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=HealthRequestSerializer, responses={200: NodeSerializer})
    def post(self, request: Request, name: str) -> Response:
        node = own_node(user_of(request), name)
        data = body_object(request, {"problems"})
        node = health.report(node, health.problems_of(data.get("problems")))
        return Response(NodeSerializer(node).data)


def free_of(node: Node) -> Capacity:
    """`node`'s capacity less what its running tasks take, by the same rule as placement."""
    free = Capacity.from_dict(node.capacity)
    defaults = Limits.from_dict(node.defaults)
    for spec in Task.objects.filter(lease__node=node, lease__ended=None).values_list(
        "spec", flat=True
    ):
        free = free.minus(Demand.of(TaskSpec.from_dict(spec), defaults).capacity)
    return free


class NodeClaimView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=ClaimRequestSerializer, responses={200: ClaimSerializer})
    def post(self, request: Request, name: str) -> Response:
        node = own_node(user_of(request), name)
        data = body_object(request, {"free", "idle", "wait"})
        wait = wait_seconds(data.get("wait"))
        try:
            free = (
                Capacity.from_dict(data["free"], "free")
                if data.get("free") is not None
                else free_of(node)
            )
        except SpecError as error:
            raise spec_error(error, "") from None
        if data.get("idle") is None:
            idle = not Lease.objects.filter(node=node, ended=None).exists()
        else:
            idle = flag(data.get("idle"), "idle", False)

        def attempt() -> claims.Claimed | None:
            leases.reap_due()
            return claims.claim_once(node, free, idle)

        claimed = wakeup.long_poll([wakeup.QUEUE], wait, attempt)
        if claimed is None:
            Node.objects.filter(pk=node.pk).update(last_seen=timezone.now())
            draining = Node.objects.filter(pk=node.pk, draining=True).exists()
            return Response({"lease": None, "task": None, "drain": draining})
        return Response(
            {
                "lease": LeaseSerializer(claimed.lease).data,
                "task": task_resource(claimed.task),
                "drain": False,
            }
        )


class LeaseHeartbeatView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=HeartbeatRequestSerializer, responses={200: HeartbeatSerializer})
    def post(self, request: Request, lease_id: str) -> Response:
        lease = leases.lease_of(user_of(request), lease_id)
        data = body_object(request, {"running"})
        beat = leases.heartbeat(lease, flag(data.get("running"), "running", False))
        return Response({"expires": beat.expires, "cancel": beat.cancel})


class LeaseResultView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=dict, responses={201: TaskSerializer})
    def post(self, request: Request, lease_id: str) -> Response:
        user = user_of(request)
        lease = leases.lease_of(user, lease_id)
        task = leases.accept_result(lease, user, request.data)
        return Response(task_resource(task), status=201)


class LeaseFailView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=FailRequestSerializer, responses={200: TaskSerializer})
    def post(self, request: Request, lease_id: str) -> Response:
        lease = leases.lease_of(user_of(request), lease_id)
        data = body_object(request, {"error", "retry"})
        error = data.get("error")
        if not isinstance(error, str) or not error.strip():
            raise Invalid("error: say what failed, as a non-empty string", field="error")
        task = leases.fail(lease, error, flag(data.get("retry"), "retry", True))
        return Response(task_resource(task))


class LeaseReleaseView(APIView):
    permission_classes = (FOREMEN,)

    @extend_schema(request=None, responses={200: TaskSerializer})
    def post(self, request: Request, lease_id: str) -> Response:
        task = leases.release(leases.lease_of(user_of(request), lease_id))
        return Response(task_resource(task))
