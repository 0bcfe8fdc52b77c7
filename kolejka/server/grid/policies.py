"""Retry policies (the task's ``retry``, `kolejka.common.retry`): after a result is accepted,
whether its task runs again by its own rules, decided in the result's transaction.

A re-run queues the task again under the same key, its `not_before` the policy's backoff, the
attempt that ended kept in its `history` (marked with why it runs again; its output files stay,
so its result stays readable); under ``grow`` its ``limits.memory`` (and `need_memory`, which the
claim pre-filters on) is what the next attempt gets. The final result lists every attempt
(`Result.attempts`).

Policy re-runs and platform retries do not count against each other: a re-run gives the task
one more attempt (`max_attempts` + 1), so the platform retries left stay as they were, and the
policy's `max` counts only its own re-runs of this run: the entries it added at the end of the
history (a rejudge or a batch re-run adds one without ``retry``, and so starts the count again).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from kolejka.common import Capacity, Result, SpecError
from kolejka.common import Task as TaskSpec
from kolejka.common.units import format_memory

from . import transitions
from .errors import Invalid
from .models import Node, State, Task


def largest_memory() -> int | None:
    """The most memory a registered node has; None when none is registered."""
    sizes = []
    for capacity in Node.objects.values_list("capacity", flat=True):
        try:
            sizes.append(Capacity.from_dict(capacity).memory)
        except SpecError:
            continue
    return max(sizes, default=None)


def check(spec: TaskSpec, at: str) -> None:
    """`Invalid` naming ``retry.memory_max`` when it is above the memory of every registered
    node: the memory would grow to what no node can give, and the task wait for ever."""
    if spec.retry is None or spec.retry.memory_max is None:
        return
    largest = largest_memory()
    if largest is not None and spec.retry.memory_max > largest:
        field = f"{at}task.retry.memory_max"
        raise Invalid(
            f"{field}: is above the memory of the largest node ({format_memory(largest)}); "
            f"no node could run the task with it (got {format_memory(spec.retry.memory_max)!r})",
            field=field,
        )


def submitted_as(spec: dict[str, Any], submitted: TaskSpec) -> bool:
    """Whether the stored `spec` of a task is what `submitted` queued: ``grow`` may have raised
    its ``limits.memory`` since, so under ``grow`` that limit is left out of the comparison."""
    if submitted.retry is None or submitted.retry.on_memory_limit is None:
        return spec == submitted.to_dict()

    def without_memory(document: dict[str, Any]) -> dict[str, Any]:
        limits = {k: v for k, v in (document.get("limits") or {}).items() if k != "memory"}
        return {**document, "limits": limits}

    return without_memory(spec) == without_memory(submitted.to_dict())


def reruns(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of `history` that the policy added in the current run: those at its end."""
    count = 0
    for entry in reversed(history):
        if not isinstance(entry, dict) or entry.get("retry") is None:
            break
        count += 1
    return history[len(history) - count :]


def _policy_of(task: Task) -> TaskSpec | None:
    if not isinstance(task.spec, dict) or task.spec.get("retry") is None:
        return None  # most tasks: no need to read the whole spec
    try:
        spec = TaskSpec.from_dict(task.spec)
    except SpecError:
        return None  # cannot happen for a task the server accepted; it simply has no policy
    return spec if spec.retry is not None else None


def rerun(task: Task, result: Result, now: datetime) -> bool:
    """Queue the active `task` again if its policy says so after `result` (its attempt
    `task.attempts`), and return True; False if the result is final."""
    spec = _policy_of(task)
    if spec is None or spec.retry is None:
        return False
    earlier = reruns(task.history)
    memory = result.limits.memory or spec.limits.memory
    decision = spec.retry.after(
        result.result, result.status, memory, largest_memory(), len(earlier)
    )
    if decision is None:
        return False
    count = len(earlier) + 1
    entry = {
        "state": State.DONE,
        "attempts": task.attempts,
        "finished": now.isoformat(),
        "error": None,
        "result": result.to_dict(),
        "retry": decision.why,
    }
    fields: dict[str, Any] = {
        "history": [*task.history, entry],
        "max_attempts": task.max_attempts + 1,
        "not_before": now + timedelta(seconds=spec.retry.backoff.delay(count)),
        "avoid_node_id": None,
        "avoid_until": None,
        "last_failure": f"{decision.why}: the retry policy runs it again ({count} of "
        f"{spec.retry.max})",
    }
    if decision.memory is not None:
        limits = dataclasses.replace(spec.limits, memory=decision.memory)
        fields["spec"] = dataclasses.replace(spec, limits=limits).to_dict()
        fields["need_memory"] = decision.memory
    transitions.requeue(task, now, **fields)
    return True


def final(task: Task, result: Result) -> dict[str, Any]:
    """`result` as the final result of `task` stores it: with every attempt listed if the task
    has a policy."""
    if _policy_of(task) is not None:
        earlier = [
            Result.from_dict(entry["result"]).attempt(entry.get("attempts"), entry["retry"])
            for entry in reruns(task.history)
        ]
        result = dataclasses.replace(
            result, attempts=[*earlier, result.attempt(task.attempts, None)]
        )
    return result.to_dict()
