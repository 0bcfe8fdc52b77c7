"""Why a queued task is not running: the `reason` of the task resource, and `explain`, the
answer of ``tasks/{key}/why/`` node by node.

A task is never left queued without a word: it says when its last attempt failed and why (and
when the next may start), that a node is reserved for it and by when it starts there
(`reservations.py`), that no registered node can ever run it (and why not, node by node:
``memory: 1P``, a tag no node has; a task asking more cpus than any node has is not one, it runs
on the largest node's cores), or that the nodes that could are down, unhealthy or draining. Both
judge a node by the claim's own rules: `Demand.misfit` (with `Demand.clamped`) for the fit;
draining and problems (`Node.takes_tasks`), `nodes.running` and `retries.claimable` for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits, SpecError
from kolejka.common import Task as TaskSpec

from . import claims, dependencies, retries
from . import nodes as node_rules
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
    down: bool


class Reasons:
    """Reasons of many tasks at once: the nodes are read once, on the first queued task."""

    def __init__(self) -> None:
        self._nodes: list[_Node] | None = None

    def nodes(self) -> list[_Node]:
        if self._nodes is None:
            self._nodes = []
            now = timezone.now()
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
                        node_rules.down(node, now),
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
    """Why `task` waits in the queue or for its dependencies, or `None` (neither, or a node may
    take it now); `reasons` shares the nodes it read with other tasks' reasons."""
    if task.state == State.WAITING:
        return "waits for its dependencies: " + ", ".join(dependencies.waits_for(task))
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
        misfit = never(spec, node.capacity, node.defaults, node.tags, largest)
        if misfit is not None:
            misfits.append(f"{node.name}: {misfit}")
        elif node.down:
            stopped.append(f"{node.name}: down")
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
        parts.append(
            f"every node that can run it is down, unhealthy or draining: {_listed(stopped)}"
        )
    return "; ".join(parts) or None


def never(
    spec: TaskSpec, capacity: Capacity, defaults: Limits, tags: frozenset[str], largest: int
) -> str | None:
    """Why a node with `capacity`, `defaults` and `tags` could never run `spec`, or `None`: the
    placement rule applied to the whole of an idle node, a task asking more cpus than the
    `largest` node has taking that node's (`Demand.clamped`)."""
    return Demand.of(spec, defaults).clamped(largest).misfit(capacity, tags, idle=True)


@dataclass(frozen=True)
class NodeVerdict:
    """Whether one node takes the task at its next claim, and if not, why not (`why`).
    `never`: the node could not run it even idle and healthy."""

    name: str
    state: str
    takes: bool
    never: bool
    why: tuple[str, ...]


@dataclass(frozen=True)
class Explanation:
    """The answer of ``tasks/{key}/why/``."""

    task: Task
    reason: str | None
    position: int | None  # 1-based, in its owner's queue in claim order; None unless queued
    queued: int  # the owner's queued tasks
    never: bool  # no registered node could ever run it
    nodes: tuple[NodeVerdict, ...]


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _verdict(task: Task, spec: TaskSpec, node: Node, now: datetime, largest: int) -> NodeVerdict:
    state = node_rules.state(node, now)
    try:
        capacity = Capacity.from_dict(node.capacity)
        defaults = Limits.from_dict(node.defaults)
    except SpecError as error:
        return NodeVerdict(node.name, state, False, True, (f"node registered badly: {error}",))
    tags = frozenset(node.tags)
    misfit = never(spec, capacity, defaults, tags, largest)
    if misfit is not None:
        return NodeVerdict(node.name, state, False, True, (misfit,))
    why: list[str] = []
    if state == "down":
        seen = f"not seen since {_at(node.last_seen)}" if node.last_seen else "never seen"
        why.append(f"node down: {seen}")
    if node.draining:
        why.append("node draining")
    if node.problems:
        why.append(f"node unhealthy: {'; '.join(str(problem) for problem in node.problems)}")
    if node_rules.running(node) >= node.slots:
        why.append(f"node runs {node.slots} of {node.slots} tasks (its slots)")
    else:
        now_misfit = (
            Demand.of(spec, defaults)
            .clamped(largest)
            .misfit(node_rules.free_of(node), tags, idle=node_rules.idle(node))
        )
        if now_misfit is not None:
            why.append(now_misfit)
    if not Task.objects.filter(pk=task.pk).filter(retries.claimable(node.pk, now)).exists():
        if task.not_before is not None and task.not_before > now:
            why.append(f"retry spacing: no node takes it before {_at(task.not_before)}")
        elif task.avoid_until is not None:
            why.append(
                f"its last attempt failed on this node: other nodes first until "
                f"{_at(task.avoid_until)}"
            )
    return NodeVerdict(node.name, state, not why, False, tuple(why))


def explain(task: Task) -> Explanation:
    """Where `task` is in its owner's queue and, node by node, why it does not run there now;
    for a waiting task, what it waits for."""
    if task.state != State.QUEUED:
        return Explanation(task, reason(task), None, 0, False, ())
    mine = Task.objects.filter(owner_id=task.owner_id, state=State.QUEUED)
    # The claim's order within one owner: the highest priority first, then the owner's own
    # order (the highest rank first), then the oldest.
    ahead = mine.filter(
        Q(priority__gt=task.priority)
        | Q(priority=task.priority, rank__gt=task.rank)
        | Q(priority=task.priority, rank=task.rank, id__lt=task.pk)
    )
    now = timezone.now()
    try:
        spec = TaskSpec.from_dict(task.spec)
    except SpecError:
        verdicts: tuple[NodeVerdict, ...] = ()
    else:
        largest = claims.largest_cpus()
        verdicts = tuple(
            _verdict(task, spec, node, now, largest) for node in Node.objects.order_by("name")
        )
    return Explanation(
        task,
        reason(task),
        ahead.count() + 1,
        mine.count(),
        all(verdict.never for verdict in verdicts),
        verdicts,
    )
