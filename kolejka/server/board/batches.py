"""The batches page: each batch's progress (its tasks by state, a bar) and verdict counts,
live; the batch's tasks are the board filtered by it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kolejka.server.grid import batches, listing
from kolejka.server.grid.models import State
from kolejka.server.grid.views.tasks import BatchViewSet

from . import live
from .access import page, user_of

ROLES = BatchViewSet.roles
SHOWN = 50  # the newest batches shown
# The bar's segments, in order, and the states each counts.
SEGMENTS = (
    ("done", (State.DONE,)),
    ("failed", (State.FAILED, State.CANCELLED)),
    ("running", (State.ASSIGNED, State.RUNNING)),
    ("queued", (State.WAITING, State.QUEUED)),
)


def _shown(progress: dict[str, Any]) -> dict[str, Any]:
    total = sum(progress["states"].values()) or 1
    bar = []
    for name, states in SEGMENTS:
        count = sum(progress["states"].get(str(state), 0) for state in states)
        bar.append((name, count, round(100 * count / total, 1)))
    final = sum(progress["states"].get(str(state), 0) for state in State if state.final)
    return {
        "key": progress["batch"],
        "owner": progress["owner"],
        "state": progress["state"],
        "total": progress["total"],
        "final": final,
        "bar": bar,
        "verdicts": sorted(progress["verdicts"].items()),
        "created": progress["created"],
        "finished": progress["finished"],
    }


def batches_data(request: HttpRequest) -> dict[str, Any]:
    found = list(listing.visible_batches(user_of(request)).order_by("-id")[:SHOWN])
    return {"batches": [_shown(progress) for progress in batches.progress_of(found)]}


@require_GET
@page(ROLES["list"])
def batches_page(request: HttpRequest) -> HttpResponse:
    data = batches_data(request)
    context = {**data, "token": live.token(data), "poll": live.poll(), "nav": "batches"}
    return render(request, "board/batches.html", context)


@require_GET
@page(ROLES["list"])
def batches_fragment(request: HttpRequest) -> HttpResponse:
    return live.fragment(request, "board/_batches.html", batches_data(request))
