"""The board of tasks (Queued / Running / Done, live), a task's page, cancelling a task and
downloading its files. What a user sees and may change is the API's (`grid.listing`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.db.models.fields.json import KT
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from kolejka.common import Status
from kolejka.server.grid import blobs, blobstore, listing, logs, pending, transitions
from kolejka.server.grid.errors import Invalid, NotFound
from kolejka.server.grid.models import Lease, State, Task
from kolejka.server.grid.permissions import may_change
from kolejka.server.grid.views.tasks import TaskViewSet

from . import live
from .access import page, user_of

ROLES = TaskViewSet.roles
# Each column in the order of an index (`Task` `task_by_state`, `task_by_owner_state`): a poll
# reads the first rows of a deep queue, never sorts all of it.
COLUMNS = (
    ("queued", "Queued", (State.WAITING, State.QUEUED), "id"),
    ("running", "Running", (State.ASSIGNED, State.RUNNING), "id"),
    ("done", "Done", (State.DONE, State.FAILED, State.CANCELLED), "-id"),
)
SHOWN = 50  # tasks a column lists; its count says how many it has
COUNTED = 10_000  # a column counts this many at most ("10000+"), so a poll never counts them all
LOG_SHOWN = 64 * 1024  # bytes of stdout and stderr a task page shows (the rest: download)


class Filters(forms.Form):
    state = forms.ChoiceField(choices=[("", "any state")] + [(s, s) for s in State], required=False)
    verdict = forms.ChoiceField(
        choices=[("", "any verdict")] + [(s, s) for s in Status], required=False
    )
    owner = forms.CharField(max_length=150, required=False)
    batch = forms.CharField(max_length=64, required=False)
    tag = forms.CharField(max_length=255, required=False)
    key = forms.CharField(max_length=64, required=False, label="key starts with")


def _filters(request: HttpRequest) -> tuple[Filters, dict[str, Any]]:
    form = Filters(request.GET)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise Invalid(f"{field}: {errors[0]}", field=field)
    return form, form.cleaned_data


# What a card shows, read as plain values: a poll decodes no task's whole spec or result.
CARD = ("key", "owner__username", "state", "image", "args", "node__name", "verdict", "attempts")


def _cards(tasks: QuerySet[Task]) -> list[tuple[Any, ...]]:
    rows = tasks.annotate(
        image=KT("spec__image"), args=KT("spec__args"), verdict=KT("result__status")
    ).values_list(*CARD, "updated")[:SHOWN]
    cards = []
    for key, owner, state, image, args, node, verdict, attempts, updated in rows:
        command = " ".join(str(arg) for arg in json.loads(args or "[]"))
        cards.append(
            (
                key,
                owner,
                state,
                image or "",
                command[:80],
                node or "",
                verdict or "",
                attempts,
                updated.isoformat(),
            )
        )
    return cards


def columns(request: HttpRequest, filters: dict[str, Any]) -> dict[str, Any]:
    """What the board shows: for each column its count and first `SHOWN` tasks as cards, the
    oldest first while they wait or run, the newest first once done."""
    tasks = listing.filtered_tasks(
        listing.visible_tasks(user_of(request)),
        batch=filters["batch"],
        owner=filters["owner"],
        verdict=filters["verdict"],
        tag=filters["tag"],
        key=filters["key"],
    )
    shown = []
    for name, title, states, order in COLUMNS:
        wanted = [s for s in states if not filters["state"] or s == filters["state"]]
        column = tasks.filter(state__in=wanted).order_by(order)
        cards = _cards(column) if wanted else []
        count = column[: COUNTED + 1].count() if wanted else 0
        shown.append((name, title, f"{COUNTED}+" if count > COUNTED else str(count), cards))
    return {"columns": shown}


@require_GET
@page(ROLES["list"])
def board(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    data = columns(request, filters)
    context = {**data, "form": form, "query": request.GET.urlencode(), "token": live.token(data)}
    return render(request, "board/tasks.html", {**context, "poll": live.poll(), "nav": "tasks"})


@require_GET
@page(ROLES["list"])
def columns_fragment(request: HttpRequest) -> HttpResponse:
    _, filters = _filters(request)
    query = request.GET.copy()
    query.pop("token", None)
    return live.fragment(
        request, "board/_columns.html", columns(request, filters), query=query.urlencode()
    )


def _log(task: Task) -> list[dict[str, Any]]:
    """The task's stdout and stderr as `logs.read` knows them (the result's files once it is
    done, what its node streamed while it runs): each stream's name, size and whether it was
    cut, not its bytes, so that a poll sees the log grow without reading it."""
    found = []
    for stream in ("stdout", "stderr"):
        known = logs.read(task, stream, 0, 0)
        if known.size or known.attempt is not None:
            name = (task.result or {}).get(stream) or (task.spec or {}).get(stream)
            found.append(
                {
                    "stream": stream,
                    "name": name,
                    "size": known.size,
                    "truncated": known.truncated,
                    "attempt": known.attempt,
                }
            )
    return found


def _read(task: Task, stream: str) -> tuple[str, bool]:
    """The first `LOG_SHOWN` bytes of the task's `stream` as text, and whether there is more."""
    head = logs.read(task, stream, 0, LOG_SHOWN + 1)
    return head.data[:LOG_SHOWN].decode("utf-8", "replace"), head.size > LOG_SHOWN


def task_data(task: Task) -> dict[str, Any]:
    """What a task's page shows that changes while it is open."""
    leases = Lease.objects.filter(task=task).select_related("node").order_by("created")
    result = task.result or {}
    return {
        "state": task.state,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "node": task.node.name if task.node_id is not None and task.node else None,
        "created": task.created,
        "started": task.started,
        "finished": task.finished,
        "updated": task.updated,
        "error": task.error,
        "verdict": result.get("status"),
        "code": result.get("result"),
        "stats": result.get("stats"),
        "used_limits": result.get("limits"),
        "files": sorted(
            name
            for name, file in (result.get("files") or {}).items()
            if isinstance(file, dict) and file.get("reference")
        ),
        "log": _log(task),
        "history": task.history,
        "leases": [
            (lease.attempt, lease.node.name, lease.created, lease.ended, lease.outcome)
            for lease in leases
        ],
        "reason": pending.reason(task),
    }


def _rendered(request: HttpRequest, task: Task, data: dict[str, Any]) -> dict[str, Any]:
    """What a task's page shows besides `task_data`, read only when it renders: its log's text
    and, while it waits, its place in the queue and each node's verdict (`task why`, queries
    per node: a poll does not run them, the page shows them as of its last change)."""
    user = user_of(request)
    context = {
        "task": task,
        "final": State(task.state).final,
        "log_text": [(entry, *_read(task, entry["stream"])) for entry in data["log"]],
    }
    if may_change(user, task.owner_id):
        final = State(task.state).final
        context["buttons"] = [
            action
            for action, shown in (
                ("cancel", not final),
                ("retry", final and transitions.failed(task)),
                ("rejudge", final),
            )
            if shown and user.role in ROLES[action]
        ]
    if task.state == State.QUEUED:
        explained = pending.explain(task)
        context["position"] = (explained.position, explained.queued)
        context["verdicts"] = [
            (verdict.name, verdict.state, verdict.takes, "; ".join(verdict.why))
            for verdict in explained.nodes
        ]
    return context


@require_GET
@page(ROLES["retrieve"])
def task_page(request: HttpRequest, key: str) -> HttpResponse:
    task = listing.visible_task(user_of(request), key)
    data = task_data(task)
    context = {**_rendered(request, task, data), **data}
    context |= {"token": live.token(data), "poll": live.poll(), "spec": task.spec, "nav": "tasks"}
    return render(request, "board/task.html", context)


@require_GET
@page(ROLES["retrieve"])
def task_fragment(request: HttpRequest, key: str) -> HttpResponse:
    task = listing.visible_task(user_of(request), key)
    data = task_data(task)
    return live.fragment(
        request,
        "board/_task.html",
        data,
        lambda: _rendered(request, task, data),
    )


# The buttons of a task's page: the API's own actions, each with its roles and transition.
CHANGES = {
    "cancel": transitions.cancel,
    "retry": transitions.retry,
    "rejudge": transitions.rejudge,
}


def _change_view(action: str) -> Callable[[HttpRequest, str], HttpResponseBase]:
    @require_POST
    @page(ROLES[action])
    def change(request: HttpRequest, key: str) -> HttpResponse:
        task = listing.visible_task(user_of(request), key)
        listing.change_task(user_of(request), task, CHANGES[action])
        return redirect("board:task", key=key)

    change.__name__ = change.__qualname__ = action
    change.__doc__ = f"The task's {action} (as ``POST tasks/{{key}}/{action}/``); its page again."
    return change


cancel, retry, rejudge = (_change_view(action) for action in CHANGES)


@require_GET
@page(ROLES["result"])
def download(request: HttpRequest, key: str, name: str) -> HttpResponseBase:
    """An output file of a task the user sees, by its name in the result; the blob's own
    read rule applies too (`blobs.readable_blob`)."""
    task = listing.visible_task(user_of(request), key)
    file = ((task.result or {}).get("files") or {}).get(name)
    reference = file.get("reference") if isinstance(file, dict) else None
    blob = blobs.readable_blob(user_of(request), str(reference)) if reference else None
    content = blobstore.backend().open(blob.reference) if blob is not None else None
    if blob is None or content is None:
        raise NotFound(f"the task has no output file {name!r}")
    return blobstore.response(request, content, blob.size, attachment=name.rsplit("/", 1)[-1])
