"""Why a queued task is not running: the `reason` of the task resource.

A task is never left queued without a word: it says when its last attempt failed and why (and
when the next may start), that no registered node can ever run it (and why not, node by node:
``memory: 1P``, a tag no node has), or that the nodes that could are unhealthy or draining.
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
    misfits, stopped = [], []
    for node in nodes:
        misfit = Demand.of(spec, node.defaults).misfit(node.capacity, node.tags, idle=True)
        if misfit is not None:
            misfits.append(f"{node.name}: {misfit}")
        elif node.draining:
            stopped.append(f"{node.name}: draining")
        elif node.problems:
            stopped.append(f"{node.name}: unhealthy ({', '.join(node.problems)})")
    if not nodes:
        parts.append("no node is registered")
    elif len(misfits) == len(nodes):
        parts.append(f"no registered node can ever run it: {_listed(misfits)}")
    elif len(misfits) + len(stopped) == len(nodes):
        parts.append(f"every node that can run it is unhealthy or draining: {_listed(stopped)}")
    return "; ".join(parts) or None
