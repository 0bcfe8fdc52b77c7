"""The long-polls of the API: a claim waiting for a task, a client waiting for its task to move
on, to finish or to print more. Each waits through `wakeup.long_poll` up to the wait the request
asked for (the serializers cut it to ``KOLEJKA_MAX_WAIT``). The views only call these; under ASGI
their routes (`views.waiting`) run them again on each wake-up instead of sleeping in a thread."""

from __future__ import annotations

import functools
import time

from django.db.models import QuerySet
from django.utils import timezone

from kolejka.common import Capacity, Demand, Limits
from kolejka.common import Task as TaskSpec

from . import claims, leases, logs, metrics, wakeup
from .hub import Fits
from .models import FINISHED, Node, Task


def claim(
    node: Node, free: Capacity, idle: bool, wait: float, count: int = 1
) -> list[claims.Claimed]:
    """Up to `count` tasks for `node`, each under a new lease (`claims.claim`), waiting up to
    `wait` seconds for one to come; `[]` if none came. Tasks taken for a client that went away
    go back at once (`leases.release`)."""

    def attempt() -> list[claims.Claimed] | None:
        leases.reap_due()
        start = time.perf_counter()
        claimed = claims.claim(node, free, idle, count)
        metrics.CLAIM_TIME.observe(time.perf_counter() - start)
        now = timezone.now()
        for one in claimed:
            metrics.QUEUE_WAIT.observe((now - one.task.created).total_seconds())
            wakeup.on_undelivered(functools.partial(leases.release, one.lease))
        return claimed or None

    found = wakeup.long_poll([wakeup.node_topic(node.pk)], wait, attempt, fitting(node, free, idle))
    return found or []


def fitting(node: Node, free: Capacity, idle: bool) -> Fits:
    """Whether a queued task may start on `node` with `free` now: what wakes its claim. Looser
    than the claim (a drained node, reservations and tasks ahead are not read); a claim woken for
    a task it does not take passes it on."""
    tags = frozenset(node.tags)
    defaults = Limits.from_dict(node.defaults)
    cores = max(claims.largest_cpus(), Capacity.from_dict(node.capacity).cpus)

    def fits(spec: TaskSpec) -> bool:
        return Demand.of(spec, defaults).clamped(cores).fits(free, tags, idle=idle)

    return fits


def moved(tasks: QuerySet[Task], task: Task, state: str, wait: float) -> Task:
    """`task` (one of `tasks`) once it is no longer in `state`, or as it is after `wait` s."""
    if not wait or task.state != state:
        return task
    found = wakeup.long_poll(
        [wakeup.task_topic(task.pk)],
        wait,
        lambda: tasks.filter(pk=task.pk).exclude(state=state).first(),
    )
    return found or tasks.filter(pk=task.pk).first() or task


def finished(tasks: QuerySet[Task], task: Task, wait: float) -> Task:
    """`task` (one of `tasks`) once it is final, or as it is after `wait` seconds."""
    if not wait or task.state in FINISHED:
        return task
    found = wakeup.long_poll(
        [wakeup.task_topic(task.pk)],
        wait,
        lambda: tasks.filter(pk=task.pk, state__in=FINISHED).first(),
    )
    return found or task


def log(
    tasks: QuerySet[Task], task: Task, stream: str, offset: int, limit: int, wait: float
) -> logs.LogPart:
    """`task`'s `stream` from `offset`, at most `limit` bytes (`logs.read`), once there are
    some, or the task is final, or its attempt changed; as it is after `wait` seconds otherwise.
    An offset past what is known (an earlier attempt's) answers at once."""
    part = logs.read(task, stream, offset, limit)
    if not wait or part.data or part.complete or offset > part.size:
        return part

    def news() -> logs.LogPart | None:
        fresh = tasks.filter(pk=task.pk).first()
        if fresh is None:
            return part
        found = logs.read(fresh, stream, offset, limit)
        changed = found.data or found.complete or found.started != part.started
        return found if changed else None

    topics = [wakeup.log_topic(task.pk), wakeup.task_topic(task.pk)]
    return wakeup.long_poll(topics, wait, news) or part
