"""The nodes page (capacity, what is free, running tasks, health, last heartbeat; live) and
draining a node, for admins, as the API does it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from kolejka.server.grid import listing, nodes
from kolejka.server.grid.errors import Invalid
from kolejka.server.grid.serializers import NodeSerializer
from kolejka.server.grid.views.nodes import NodeViewSet

from . import live
from .access import page, user_of

ROLES = NodeViewSet.roles


def nodes_data(request: HttpRequest) -> dict[str, Any]:
    """The nodes as the API lists them to this user (`NodeSerializer`, the running tasks it may
    see), the time of their last call ('heartbeat') relative to now left to the page."""
    user = user_of(request)
    context = {"viewer": user, "now": timezone.now()}
    shown = NodeSerializer(listing.visible_nodes(user), many=True, context=context).data
    return {"nodes": [dict(node) for node in shown]}


def _context(request: HttpRequest) -> dict[str, Any]:
    return {"may_drain": user_of(request).role in ROLES["drain"]}


@require_GET
@page(ROLES["list"])
def nodes_page(request: HttpRequest) -> HttpResponse:
    data = nodes_data(request)
    context = {
        **data,
        **_context(request),
        "token": live.token(data),
        "poll": live.poll(),
        "nav": "nodes",
    }
    return render(request, "board/nodes.html", context)


@require_GET
@page(ROLES["list"])
def nodes_fragment(request: HttpRequest) -> HttpResponse:
    return live.fragment(request, "board/_nodes.html", nodes_data(request), **_context(request))


@require_POST
@page(ROLES["drain"])
def drain(request: HttpRequest, name: str) -> HttpResponse:
    """Drain the node (``drain=1``) or take it back (``drain=0``)."""
    wanted = request.POST.get("drain")
    if wanted not in ("0", "1"):
        raise Invalid("drain: 1 to drain the node, 0 to take it back", field="drain")
    nodes.drain(nodes.node_of(user_of(request), name), wanted == "1")
    return redirect("board:nodes")
