"""Nodes: registration by their foreman, draining, forgetting, what a node has free, and the
state it is shown in."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits
from kolejka.common import Task as TaskSpec

from . import transitions, wakeup
from .errors import Conflict, NotFound
from .models import Lease, Node, Role, Task, User


def node_of(user: User, name: str, *, admins: bool = True) -> Node:
    """`user`'s node `name` (with `admins`, any node for an admin); 404 for anyone else's."""
    nodes = Node.objects.filter(name=name)
    if not (admins and user.role == Role.ADMIN):
        nodes = nodes.filter(owner=user)
    node = nodes.first()
    if node is None:
        raise NotFound("no such node; register it first (PUT /api/v1/nodes/{name}/)")
    return node


def register(
    user: User, name: str, capacity: Capacity, defaults: Limits, tags: list[str], slots: int
) -> Node:
    """Register the node `name` for `user`, or update it; `Conflict` if another user has it."""
    fields = {
        "capacity": capacity.to_dict(),
        "defaults": defaults.to_dict(),
        "tags": sorted(set(tags)),
        "slots": slots,
        "last_seen": timezone.now(),
    }
    with transaction.atomic():
        node, created = Node.objects.get_or_create(name=name, defaults={"owner": user, **fields})
        if not created:
            if node.owner_id != user.pk:
                raise Conflict(f"the node name {name!r} belongs to another foreman", "name")
            for key, value in fields.items():
                setattr(node, key, value)
            node.save()
        # A node that grew may now take tasks that are waiting for it.
        wakeup.notify(wakeup.node_topic(node.pk))
    return node


def drain(node: Node, draining: bool) -> Node:
    """Stop giving `node` new tasks (`draining` false: start again); its running tasks go on."""
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(draining=draining)
        wakeup.notify(wakeup.node_topic(node.pk))
    node.draining = draining
    return node


def forget(node: Node) -> None:
    """Remove `node` (admin: it is gone for good); `Conflict` while it holds a lease.

    Its ended leases go with it and its finished tasks no longer name it. A foreman that comes
    back registers it again when it starts.
    """
    with transaction.atomic():
        # Loser of a race with a claim: the claim locks the node row first (claims.claim),
        # so either the claim sees no node, or this sees its lease.
        current = transitions.locked(Node.objects.filter(pk=node.pk)).first()
        if current is None:
            return
        if Lease.objects.filter(node=current, ended=None).exists():
            raise Conflict(
                f"node {node.name} holds leases; drain it and let its tasks end (a dead node's "
                "leases end when they expire) before forgetting it",
                "name",
            )
        current.delete()


def down(node: Node, now: datetime) -> bool:
    """Whether `node` has not called in for ``KOLEJKA_NODE_DOWN_AFTER`` (its leases, if any,
    expire and their tasks are requeued by the reaper on their own)."""
    limit = timedelta(seconds=settings.NODE_DOWN_AFTER)
    return node.last_seen is None or now - node.last_seen > limit


def state(node: Node, now: datetime) -> str:
    """How `node` is shown: ``down``, ``unhealthy``, ``draining`` or ``up``, the first true."""
    if down(node, now):
        return "down"
    if node.problems:
        return "unhealthy"
    return "draining" if node.draining else "up"


def running(node: Node) -> int:
    """How many of `node`'s slots its tasks take: its open leases."""
    return Lease.objects.filter(node=node, ended=None).count()


def free_of(node: Node, capacity: Capacity | None = None) -> Capacity:
    """`node`'s capacity (or `capacity`) less what its running tasks take, by the same rule as
    placement."""
    free = capacity or Capacity.from_dict(node.capacity)
    defaults = Limits.from_dict(node.defaults)
    capacity = free
    for spec in Task.objects.filter(lease__node=node, lease__ended=None).values_list(
        "spec", flat=True
    ):
        demand = Demand.of(TaskSpec.from_dict(spec), defaults).clamped(capacity.cpus)
        free = free.minus(demand.booking(capacity))
    return free


def idle(node: Node) -> bool:
    """Whether `node` holds no lease."""
    return not Lease.objects.filter(node=node, ended=None).exists()


def called_in(node: Node) -> None:
    """Note that `node` called in: one write a second at most, when showing a node down takes
    minutes (``KOLEJKA_NODE_DOWN_AFTER``)."""
    now = timezone.now()
    if node.last_seen is None or now - node.last_seen > timedelta(seconds=1):
        Node.objects.filter(pk=node.pk).update(last_seen=now)
        node.last_seen = now


def seen(node: Node) -> bool:
    """Note that `node` called in; return whether it is draining."""
    Node.objects.filter(pk=node.pk).update(last_seen=timezone.now())
    return Node.objects.filter(pk=node.pk, draining=True).exists()
