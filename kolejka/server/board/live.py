"""Live fragments: a board page shows fragments that ask again every ``KOLEJKA_BOARD_POLL``
with the token of what they show. The token is a hash of the data a fragment is rendered from,
so an unchanged answer is an empty 204, which htmx leaves alone, and costs the fragment's
queries but no rendering.

Polling rather than server-sent events: the server is threaded, and a stream per open board
would hold a thread (of 64 a process) for as long as the page is open; a poll holds one for the
few milliseconds of its queries (docs/board.md has the figures).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def token(data: Any) -> str:
    """A short hash of `data` (plain values: strings, numbers, times, lists, dicts, tuples)."""
    return hashlib.sha256(repr(data).encode()).hexdigest()[:20]


def fragment(
    request: HttpRequest,
    template: str,
    data: dict[str, Any],
    more: Callable[[], dict[str, Any]] | None = None,
    **context: Any,
) -> HttpResponse:
    """`template` rendered with `data`, `context` and what `more` adds (called only to render),
    or 204 when `data` is what the caller's ``token`` says it already shows."""
    current = token(data)
    if request.GET.get("token") == current:
        return HttpResponse(status=204)
    extra = more() if more is not None else {}
    return render(request, template, {**context, **extra, **data, "token": current, "poll": poll()})


def poll() -> str:
    """The polling period as htmx's ``every`` takes it."""
    return f"{int(settings.BOARD_POLL * 1000)}ms"
