"""Why a queued task is not running: the `reason` of the task resource.

A task is never left queued without a word: it says when its last attempt failed and why (and
when the next may start), that a node is reserved for it and by when it starts there
(`reservations.py`), that no registered node can ever run it (and why not, node by node:
``memory: 1P``, a tag no node has; a task asking more cpus than any node has is not one, it runs
on the largest node's cores), or that the nodes that could are unhealthy or draining.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits, SpecError
from kolejka.common import Task as TaskSpec

from .models import Node, State, Task

SHOWN = 3  # nodes named in a reason


@dataclass(frozen=True)
class _Node:
    name: str
    capacity: Capacity
    tags: frozenset[str]
    defaults: Limits
    problems: tuple[str, ...]
    draining: bool


class Reasons:
    """Reasons of many tasks at once: the nodes are read once, on the first queued task."""

    def __init__(self) -> None:
        self._nodes: list[_Node] | None = None

    def nodes(self) -> list[_Node]:
        if self._nodes is None:
            self._nodes = []
            for node in Node.objects.order_by("name"):
                try:
                    capacity = Capacity.from_dict(node.capacity)
                    defaults = Limits.from_dict(node.defaults)
                except SpecError:
                    continue
                self._nodes.append(
                    _Node(
                        node.name,
                        capacity,
                        frozenset(node.tags),
                        defaults,
                        tuple(str(problem) for problem in node.problems or ()),
                        node.draining,
                    )
                )
        return self._nodes

    def of(self, task: Task) -> str | None:
        """Why `task` waits in the queue, or `None` (not queued, or a node may take it now)."""
        return reason(task, self)


def _listed(items: list[str]) -> str:
    more = f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


def reason(task: Task, reasons: Reasons | None = None) -> str | None:
    """Why `task` waits in the queue, or `None` (not queued, or a node may take it now);
    `reasons` shares the nodes it read with other tasks' reasons."""
    if task.state != State.QUEUED:
        return None
    parts: list[str] = []
    now = timezone.now()
    if task.last_failure:
        parts.append(f"attempt {task.attempts} of {task.max_attempts} failed: {task.last_failure}")
    if task.not_before is not None and task.not_before > now:
        parts.append(f"the next attempt may start at {task.not_before.isoformat()}")
    try:
        spec = TaskSpec.from_dict(task.spec)
    except SpecError:
        return "; ".join(parts) or None
    nodes = (reasons or Reasons()).nodes()
    largest = max((node.capacity.cpus for node in nodes), default=0)
    misfits, stopped = [], []
    for node in nodes:
        demand = Demand.of(spec, node.defaults).clamped(largest)
        misfit = demand.misfit(node.capacity, node.tags, idle=True)
        if misfit is not None:
            misfits.append(f"{node.name}: {misfit}")
        elif node.draining:
            stopped.append(f"{node.name}: draining")
        elif node.problems:
            stopped.append(f"{node.name}: unhealthy ({', '.join(node.problems)})")
    if task.reserved_node_id is not None and task.reserved_until and task.reserved_until > now:
        held = Node.objects.filter(pk=task.reserved_node_id).values_list("name", flat=True).first()
        start = task.reserved_start
        parts.append(
            f"node {held} is reserved for it; it starts "
            + (
                f"by {start.isoformat()} at the latest"
                if start
                else "when a task without a time limit there ends"
            )
        )
    if not nodes:
        parts.append("no node is registered")
    elif len(misfits) == len(nodes):
        parts.append(f"no registered node can ever run it: {_listed(misfits)}")
    elif len(misfits) + len(stopped) == len(nodes):
        parts.append(f"every node that can run it is unhealthy or draining: {_listed(stopped)}")
    return "; ".join(parts) or None
