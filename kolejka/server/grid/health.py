"""Node health: what a node's own check found (docker, the observer, the nvidia runtime, disk),
as its foreman reports it. A node with problems claims nothing (`Node.takes_tasks`), also from a
long-poll it started while it was healthy, until it reports none again."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from . import wakeup
from .models import Node


def report(node: Node, problems: list[str]) -> Node:
    """Record `node`'s health; a node that recovers may take the tasks waiting for it."""
    now = timezone.now()
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(problems=problems, checked=now, last_seen=now)
        if not problems:
            wakeup.notify(wakeup.node_topic(node.pk))
    node.problems, node.checked, node.last_seen = problems, now, now
    return node
