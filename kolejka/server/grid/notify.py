"""Notifications: what a task's end or a batch's completion owes its ``notify`` targets, written
as `Delivery` rows in the transaction that made it so (`deliver` sends them, retrying).

A task tells its targets of ``done``, ``failed`` and ``cancelled``; a batch tells of ``complete``
(all of its tasks final; again after a re-run completes) with its tasks counted by state and
verdict. A webhook gets JSON (`task_body`) or a Slack message (``{"text", "blocks"}``), an e-mail
address a short text. A task's ``callback_url`` is a webhook of ``done`` and ``failed`` with the
body it always had, ``{"key", "state", "id"}``; a task that came through the legacy API gets the
original's ``{"task", "result"}`` when its result comes, as the original's server sent (it had no
failed tasks). ``KOLEJKA_CALLBACKS=false`` sends nothing: notify entries are refused then and a
``callback_url`` is not called.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from kolejka.common.notify import BATCH_EVENTS, TASK_EVENTS, Notify, parse_notify

from . import batches, deliver, legacy, targets, transitions
from .errors import Invalid
from .models import FINISHED, Batch, BatchState, Channel, Delivery, State, Task

CALLBACK_EVENTS = ("done", "failed")


def check(entries: Iterable[Notify], field: str) -> None:
    """`Invalid` naming the field of the first entry this server will not send to: a webhook its
    allow-list refuses (`targets`), an e-mail with no mail server set, anything when it sends
    nothing (``KOLEJKA_CALLBACKS=false``)."""
    for index, entry in enumerate(entries):
        at = f"{field}[{index}]"
        if not settings.CALLBACKS:
            raise Invalid(f"{at}: this server sends no notifications", field=at)
        if entry.email is not None and not settings.EMAIL_HOST:
            raise Invalid(
                f"{at}.email: this server sends no e-mail (KOLEJKA_EMAIL_HOST)", field=f"{at}.email"
            )
        if entry.webhook is not None:
            check_url(entry.webhook, f"{at}.webhook")


def stored(entries: tuple[Notify, ...]) -> list[dict[str, Any]] | None:
    """`entries` as a batch's `notify` column holds them (null: none, which completions skip)."""
    return [entry.to_dict() for entry in entries] or None


def check_url(url: str, field: str) -> None:
    """`Invalid` naming `field` unless the allow-list lets the server call `url`."""
    refused = _refusal(url, int(time.monotonic() // 60))
    if refused is not None:
        raise Invalid(f"{field}: {refused}", field=field)


@lru_cache(maxsize=1024)
def _refusal(url: str, minute: int) -> str | None:
    """Why `url` is refused, resolved once a minute: a batch of a thousand tasks naming one
    webhook is one lookup. (Each delivery resolves it again, against DNS rebinding.)"""
    try:
        targets.resolve(url)
    except targets.Refused as error:
        return str(error)
    return None


def task_ended(task: Task, state: str) -> None:
    """Queue the deliveries `task`'s end in `state` owes, and its batch's completion if it was
    the batch's last task, in the caller's transaction (after the task's row was updated)."""
    spec = task.spec if isinstance(task.spec, dict) else {}
    if settings.CALLBACKS and (spec.get("notify") or spec.get("callback_url")):
        _queue(_task_deliveries(_loaded(task.pk), state))
    if task.batch_id is not None:
        batch_ended(task.batch_id)


def tasks_ended(ended: QuerySet[Task], state: str) -> None:
    """`task_ended` for the tasks `ended` that ended together in `state` (a batch cancelled).
    A query, not a list of ids: a batch's ids pass SQLite's limit of query parameters."""
    told = ended.filter(Q(spec__has_key="notify") | Q(spec__has_key="callback_url"))
    if settings.CALLBACKS:
        _queue(
            row
            for task in told.select_related("owner", "batch")
            for row in _task_deliveries(task, state)
        )
    for batch_id in ended.exclude(batch=None).values_list("batch_id", flat=True).distinct():
        batch_ended(batch_id)


def batch_ended(batch_id: int) -> None:
    """Queue the completion of the batch `batch_id` if it wants one and none of its tasks is left
    to end, once: the batch's row lock makes its last two tasks to end take turns, and the second
    sees the first final (and the batch told)."""
    if not settings.CALLBACKS:
        return
    found = Batch.objects.filter(pk=batch_id, notify__isnull=False, completed=None)
    batch = transitions.locked(found.select_related("owner")).first()
    if batch is None or batch.state != BatchState.SEALED:
        return
    if Task.objects.filter(batch_id=batch_id).exclude(state__in=FINISHED).exists():
        return
    Batch.objects.filter(pk=batch_id).update(completed=timezone.now())
    progress = batches.progress(batch)
    counts = {"total": batch.size, "states": progress["states"], "verdicts": progress["verdicts"]}
    _queue(
        _delivery(
            entry, "complete", batch=batch, body=partial(batch_body, e=entry, b=batch, c=counts)
        )
        for entry in parse_notify(batch.notify, events=BATCH_EVENTS)
    )


def _loaded(task_id: int) -> Task:
    return Task.objects.select_related("owner", "batch").get(pk=task_id)


def _task_deliveries(task: Task, state: str) -> list[Delivery]:
    spec = task.spec
    rows = [
        _delivery(entry, state, task=task, body=partial(task_body, e=entry, t=task))
        for entry in parse_notify(spec.get("notify", []), events=TASK_EVENTS)
        if state in entry.events
    ]
    url = spec.get("callback_url")
    if url and state in CALLBACK_EVENTS and (state == State.DONE or not task.legacy):
        body = (
            legacy.callback_body(task)
            if task.legacy
            else {"key": task.key, "state": state, "id": spec.get("id")}
        )
        entry = Notify(webhook=url, events=CALLBACK_EVENTS, format="callback")
        rows.append(_delivery(entry, state, task=task, body=lambda _: body))
    return rows


def _delivery(
    entry: Notify,
    event: str,
    *,
    body: Callable[[uuid.UUID], dict[str, Any]],
    task: Task | None = None,
    batch: Batch | None = None,
) -> Delivery:
    """A delivery of `event` to `entry` for `task` or `batch`, its body `body(its id)`."""
    about = task or batch
    assert about is not None
    owner: int = about.owner_id
    delivery_id = uuid.uuid4()
    return Delivery(
        id=delivery_id,
        owner_id=owner,
        task=task,
        batch=batch,
        channel=Channel.EMAIL if entry.email is not None else Channel.WEBHOOK,
        target=entry.target,
        format="email" if entry.email is not None else entry.format,
        event=event,
        body=json.dumps(body(delivery_id), default=str, sort_keys=True),
        next_try=timezone.now(),
    )


def _queue(rows: Iterable[Delivery]) -> None:
    made = Delivery.objects.bulk_create(list(rows))
    if made:
        transaction.on_commit(deliver.kick)


def _verdict(task: Task) -> str | None:
    return (task.result or {}).get("status") if task.state == State.DONE else None


def _task_facts(task: Task) -> dict[str, Any]:
    return {
        "key": task.key,
        "id": task.spec.get("id"),
        "owner": task.owner.username,
        "state": task.state,
        "verdict": _verdict(task),
        "error": task.error,
        "batch": task.batch.key if task.batch is not None else None,
        "finished": task.finished.isoformat() if task.finished else None,
    }


def task_body(delivery_id: uuid.UUID, e: Notify, t: Task) -> dict[str, Any]:
    """The body that tells the entry `e` of the task `t`'s end, in the entry's format."""
    entry, task = e, t
    facts = _task_facts(task)
    verdict = f" ({facts['verdict']})" if facts["verdict"] else ""
    headline = f"kolejka: task {task.key} {task.state}{verdict}"
    lines = [f"{name}: {value}" for name, value in facts.items() if value is not None]
    if entry.email is not None:
        return {"subject": headline, "text": "\n".join(lines) + "\n"}
    if entry.format == "slack":
        return _slack(headline, lines)
    return {"delivery": str(delivery_id), "event": task.state, "task": facts}


def batch_body(delivery_id: uuid.UUID, e: Notify, b: Batch, c: dict[str, Any]) -> dict[str, Any]:
    """The body that tells the entry `e` that the batch `b` is complete, its tasks counted `c`."""
    entry, batch, counts = e, b, c
    facts = {"key": batch.key, "owner": batch.owner.username, **counts}
    states = ", ".join(f"{n} {state}" for state, n in counts["states"].items() if n)
    verdicts = ", ".join(f"{n} {verdict}" for verdict, n in counts["verdicts"].items())
    headline = f"kolejka: batch {batch.key} complete: {states}"
    lines = [f"tasks: {counts['total']}", f"states: {states}", f"verdicts: {verdicts or 'none'}"]
    if entry.email is not None:
        return {"subject": headline, "text": "\n".join(lines) + "\n"}
    if entry.format == "slack":
        return _slack(headline, lines)
    return {"delivery": str(delivery_id), "event": "complete", "batch": facts}


def _slack(headline: str, lines: list[str]) -> dict[str, Any]:
    """A message a Slack incoming webhook takes: `text` (the notification's fallback) and blocks."""
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(lines)}]},
        ],
    }
