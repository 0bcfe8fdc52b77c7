"""Dependencies (``after``, `kolejka.common.after`): a task waits, in the server state
``waiting`` that no claim reads, until the tasks and batches it names end as it asks.

Submission (`link`) turns each dependency into a `Dependency` row, or settles it at once when its
task or batch has already ended; a task with no rows left is queued, and one with a dependency
that can no longer be met is cancelled with the reason. Every transition that makes a task final
calls `settle` in its own transaction: it reads the rows waiting on that task (and, when it was
its batch's last task to end, on its batch) through their indexes, so it costs as many rows as
wait on it, releases the dependents that have nothing left to wait for, and cancels, down the
chain, the ones whose dependency failed them.

A dependency is met once, when its task ends: running that task again later (a rejudge, a retry)
does not make its dependents wait again, and a task run again does not wait for its own
dependencies again. Keys name existing tasks, so a cycle can only come from positions within
one batch submission, which `link` refuses.

Races. A submission locks the tasks it names (on PostgreSQL ``FOR UPDATE``; SQLite's immediate
transaction holds the write lock), and for a batch the batch's unfinished tasks: a transition
that is ending one of them holds its row, so the submission waits for it and then sees it ended,
or links first and the transition then sees the row. `settle` locks each dependent before it
decides: the last two tasks of a batch ending at once take turns on it, and the second sees the
first ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.db.models.fields.json import KT

from kolejka.common import Status
from kolejka.common.after import After, When

from . import transitions, wakeup
from .errors import Invalid
from .models import FINISHED, STAGED, Batch, BatchState, Dependency, State, Task, User

UNFINISHED = [
    str(State.WAITING),
    str(State.QUEUED),
    str(State.ASSIGNED),
    str(State.RUNNING),
    STAGED,
]
# Rows decided per statement: within SQLite's limit of query parameters.
CHUNK = 500


@dataclass(frozen=True)
class _Ended:
    key: str
    state: str
    verdict: str | None

    @property
    def succeeded(self) -> bool:
        return self.state == State.DONE and self.verdict == str(Status.OK)

    def __str__(self) -> str:
        return f"done ({self.verdict})" if self.state == State.DONE else self.state


def _ended(tasks: Iterable[Task]) -> dict[int, _Ended]:
    rows = (
        Task.objects.filter(pk__in=[task.pk for task in tasks])
        .annotate(verdict=KT("result__status"))
        .values_list("id", "key", "state", "verdict")
    )
    return {task_id: _Ended(key, state, verdict) for task_id, key, state, verdict in rows}


def _batch_ended(batch_id: int) -> tuple[bool, int] | None:
    """Whether every task of the batch succeeded and how many did not, once all have ended;
    `None` while some have not."""
    if Task.objects.filter(batch_id=batch_id, state__in=UNFINISHED).exists():
        return None
    tasks = Task.objects.filter(batch_id=batch_id, state__in=FINISHED)
    ok = tasks.filter(state=State.DONE, result__status=str(Status.OK)).count()
    failed = tasks.count() - ok
    return failed == 0, failed


def _reason(on: str, ended: str, when: str) -> str:
    return f"dependency {on} ended {ended}; this task waited for it to end {when}"


def _batch_reason(key: str, failed: int, when: str) -> str:
    ended = f"with {failed} tasks not ok" if failed else "with every task ok"
    return _reason(f"batch {key}", ended, when)


def link(
    user: User,
    tasks: Sequence[Task],
    afters: Sequence[tuple[After, ...]],
    fields: Sequence[str],
    now: datetime,
    first: int = 0,
) -> None:
    """Turn the dependencies `afters` of the new `tasks` (created ``waiting``, or staged for an
    open batch) into rows, in the caller's transaction; queue the ones with nothing to wait for
    and cancel the ones a dependency already failed. `first` is the batch position of `tasks[0]`
    (positions name tasks of the same batch); `fields` name each task in errors. `Invalid` for
    an unknown key, anyone else's task or batch, an open batch, a position not in the batch, or
    a cycle."""
    batch_id = tasks[0].batch_id if tasks else None
    by_position = _positions(tasks, batch_id, first, afters, fields)
    _refuse_cycles(tasks, afters, fields, by_position)
    named = {after.key for items in afters for after in items if after.key is not None}
    keys = sorted(named)
    found_tasks: dict[str, Task] = {}
    for begin in range(0, len(keys), CHUNK):
        mine = Task.objects.filter(owner=user, key__in=keys[begin : begin + CHUNK])
        found = transitions.locked(mine.exclude(state=STAGED)).order_by("id")
        found_tasks |= {task.key: task for task in found.only("id", "key", "state", "batch_id")}
    others = sorted(named - set(found_tasks))
    found_batches = {
        batch.key: batch
        for begin in range(0, len(others), CHUNK)
        for batch in Batch.objects.filter(owner=user, key__in=others[begin : begin + CHUNK])
    }
    for batch in found_batches.values():
        # Its unfinished tasks locked: one ending now is seen ended, or sees our rows (above).
        list(
            transitions.locked(Task.objects.filter(batch=batch, state__in=UNFINISHED)).values_list(
                "id"
            )
        )
    ended_tasks = _ended(task for task in found_tasks.values() if task.state in FINISHED)
    rows: list[Dependency] = []
    failing: dict[int, str] = {}
    for task, items, field in zip(tasks, afters, fields, strict=True):
        for index, after in enumerate(items):
            at = f"{field}after[{index}]"
            if after.position is not None:
                rows.append(
                    Dependency(task=task, on_task=by_position[after.position], when=after.when)
                )
                continue
            if after.key in found_tasks:
                on = found_tasks[after.key]
                if on.pk in ended_tasks:
                    ended = ended_tasks[on.pk]
                    if not after.when.met(ended.succeeded):
                        failing.setdefault(task.pk, _reason(on.key, str(ended), after.when))
                    continue
                rows.append(Dependency(task=task, on_task=on, when=after.when))
            elif after.key in found_batches:
                batch = found_batches[after.key]
                if batch.state == BatchState.OPEN:
                    raise Invalid(
                        f"{at}.key: the batch {batch.key} is still open; seal it first",
                        field=f"{at}.key",
                    )
                outcome = _batch_ended(batch.pk)
                if outcome is None:
                    rows.append(Dependency(task=task, on_batch=batch, when=after.when))
                elif not after.when.met(outcome[0]):
                    failing.setdefault(task.pk, _batch_reason(batch.key, outcome[1], after.when))
            else:
                raise Invalid(
                    f"{at}.key: no task or batch of yours has this key (got {after.key!r})",
                    field=f"{at}.key",
                )
    Dependency.objects.bulk_create(rows)
    waiting = {row.task_id for row in rows}
    staged = [task for task in tasks if task.state == STAGED]
    for task in staged:
        if task.pk in failing:
            Dependency.objects.filter(task=task).delete()
            Task.objects.filter(pk=task.pk).update(error=failing[task.pk])
    live = [task for task in tasks if task.state == State.WAITING]
    _release([task for task in live if task.pk not in waiting and task.pk not in failing], now)
    _cancel([task.pk for task in live if task.pk in failing], failing, now)


def _positions(
    tasks: Sequence[Task],
    batch_id: int | None,
    first: int,
    afters: Sequence[tuple[After, ...]],
    fields: Sequence[str],
) -> dict[int, Task]:
    wanted = {after.position for items in afters for after in items if after.position is not None}
    if not wanted:
        return {}
    found = {first + index: task for index, task in enumerate(tasks)} if batch_id else {}
    earlier = wanted - set(found)
    if earlier and batch_id is not None:
        found |= {
            task.position: task
            for task in Task.objects.filter(batch_id=batch_id, position__in=earlier)
            if task.position is not None
        }
    for items, field in zip(afters, fields, strict=True):
        for index, after in enumerate(items):
            if after.position is not None and after.position not in found:
                at = f"{field}after[{index}].position"
                where = "in the batch" if batch_id is not None else "of a batch: submit one"
                raise Invalid(f"{at}: no task at position {after.position} {where}", field=at)
    return found


def _refuse_cycles(
    tasks: Sequence[Task],
    afters: Sequence[tuple[After, ...]],
    fields: Sequence[str],
    by_position: dict[int, Task],
) -> None:
    """`Invalid` naming a task of a cycle among the positions of one submission."""
    index_of = {task.pk: index for index, task in enumerate(tasks)}
    edges = {
        index: [
            index_of[by_position[after.position].pk]
            for after in items
            if after.position is not None and by_position[after.position].pk in index_of
        ]
        for index, items in enumerate(afters)
    }
    done: set[int] = set()
    for start in edges:
        path, stack = {start}, [(start, iter(edges[start]))]
        while stack:
            node, following = stack[-1]
            step = next(following, None)
            if step is None:
                stack.pop()
                path.discard(node)
                done.add(node)
            elif step in path:
                raise Invalid(
                    f"{fields[step]}after: its dependencies make a cycle (through "
                    f"{fields[node] or 'itself'})",
                    field=f"{fields[step]}after",
                )
            elif step not in done:
                path.add(step)
                stack.append((step, iter(edges[step])))


def _release(tasks: list[Task], now: datetime) -> None:
    """Queue the waiting `tasks`, whose dependencies are all met."""
    if not tasks:
        return
    Task.objects.filter(pk__in=[task.pk for task in tasks], state=State.WAITING).update(
        state=State.QUEUED, updated=now
    )
    wakeup.queued([task.pk for task in tasks])
    for task in tasks:
        wakeup.notify(wakeup.task_topic(task.pk))


def _cancel(ids: list[int], reasons: dict[int, str], now: datetime) -> None:
    """Cancel the waiting tasks `ids`, each with its reason, and settle what waits on them."""
    if not ids:
        return
    Dependency.objects.filter(task_id__in=ids).delete()
    for task_id in ids:
        Task.objects.filter(pk=task_id, state=State.WAITING).update(
            state=State.CANCELLED, error=reasons[task_id], finished=now, updated=now
        )
        wakeup.notify(wakeup.task_topic(task_id))
    settle(ids, now)


def settle(ended: Iterable[int], now: datetime) -> None:
    """The tasks `ended` just became final, in the caller's transaction: settle what waits on
    them (and on their batches, when they were the last to end), down the chain. A chunk of
    rows at a time: a task many wait on passes SQLite's limit of query parameters."""
    pending = list(ended)
    while pending:
        cancelled: list[int] = []
        for begin in range(0, len(pending), CHUNK):
            cancelled += _settle(pending[begin : begin + CHUNK], now)
        pending = cancelled


def _settle(ended: list[int], now: datetime) -> list[int]:
    """`settle` for at most `CHUNK` tasks; the tasks it cancelled."""
    tasks = list(Task.objects.filter(pk__in=ended).only("id", "key", "batch_id"))
    outcomes = _ended(tasks)
    batches = {task.batch_id for task in tasks if task.batch_id is not None}
    waiting = Dependency.objects.filter(Q(on_task__in=ended) | Q(on_batch_id__in=batches))
    edges = list(waiting.select_related("on_batch").order_by("task_id", "id"))
    judged: dict[int, tuple[bool, int] | None] = {}
    cancelled: list[int] = []
    for begin in range(0, len(edges), CHUNK):
        part = edges[begin : begin + CHUNK]
        # The dependents locked before their batches are judged: the last two tasks of a batch
        # ending at once take turns here, and the second sees the first ended.
        current = {
            task.pk: task
            for task in transitions.locked(
                Task.objects.filter(pk__in={edge.task_id for edge in part})
            )
            .order_by("id")
            .only("id", "state", "owner_id", "priority")
        }
        # Loser of a race with another settle or a cancel: the row it decided is gone.
        still = set(
            Dependency.objects.filter(pk__in=[edge.pk for edge in part]).values_list(
                "pk", flat=True
            )
        )
        decided: list[tuple[Dependency, bool, str]] = []
        for edge in part:
            if edge.pk not in still:
                continue
            if edge.on_task_id is not None:
                on = outcomes[edge.on_task_id]
                reason = _reason(on.key, str(on), edge.when)
                decided.append((edge, When(edge.when).met(on.succeeded), reason))
                continue
            assert edge.on_batch is not None
            batch = edge.on_batch
            if batch.pk not in judged:
                judged[batch.pk] = _batch_ended(batch.pk)
            outcome = judged[batch.pk]
            if outcome is not None:
                reason = _batch_reason(batch.key, outcome[1], edge.when)
                decided.append((edge, When(edge.when).met(outcome[0]), reason))
        cancelled += _decide(decided, current, now)
    return cancelled


def _decide(
    decided: list[tuple[Dependency, bool, str]], current: dict[int, Task], now: datetime
) -> list[int]:
    """Apply the decided dependencies; return the tasks this cancelled (to settle in turn)."""
    gone = [edge.pk for edge, _, _ in decided]
    Dependency.objects.filter(pk__in=gone).delete()
    failing: dict[int, str] = {}
    for edge, met, reason in decided:
        if not met:
            failing.setdefault(edge.task_id, reason)
    touched = {edge.task_id for edge, _, _ in decided}
    left = set(
        Dependency.objects.filter(task_id__in=touched - set(failing)).values_list(
            "task_id", flat=True
        )
    )
    staged = [task_id for task_id in failing if current[task_id].state == STAGED]
    for task_id in staged:  # cancelled when its batch is sealed (`batches.seal`)
        Task.objects.filter(pk=task_id).update(error=failing[task_id])
    Dependency.objects.filter(task_id__in=staged).delete()
    waiting = {task_id for task_id in touched if current[task_id].state == State.WAITING}
    _release([current[task_id] for task_id in sorted(waiting - left - set(failing))], now)
    cancelled = sorted(waiting & set(failing))
    Dependency.objects.filter(task_id__in=cancelled).delete()
    for task_id in cancelled:
        Task.objects.filter(pk=task_id).update(
            state=State.CANCELLED, error=failing[task_id], finished=now, updated=now
        )
        wakeup.notify(wakeup.task_topic(task_id))
    return cancelled


def waits_for(task: Task) -> list[str]:
    """What the waiting `task` still waits for: ``ok:t-...``, ``any:batch b-...``."""
    rows = Dependency.objects.filter(task=task).select_related("on_task", "on_batch").order_by("id")
    return [
        f"{row.when}:{row.on_task.key}" if row.on_task else f"{row.when}:batch {row.on_batch.key}"  # type: ignore[union-attr]
        for row in rows
    ]
