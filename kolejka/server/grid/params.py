"""Query parameters and request bodies checked with errors that name the parameter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.request import Request

from .errors import Invalid


def body_object(request: Request, allowed: set[str], name: str = "") -> dict[str, Any]:
    """The JSON body as an object holding only `allowed` keys."""
    data = request.data
    if not isinstance(data, Mapping):
        raise Invalid("the body must be a JSON object", field=name or None)
    unknown = sorted(set(data) - allowed)
    if unknown:
        field = f"{name}.{unknown[0]}" if name else unknown[0]
        known = ", ".join(sorted(allowed)) or "none"
        raise Invalid(f"{field}: unknown field; known: {known}", field=field)
    return dict(data)


def wait_seconds(value: object, field: str = "wait") -> float:
    """A long-poll's wait, 0 to ``KOLEJKA_MAX_WAIT`` seconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise Invalid(f"{field}: must be a number of seconds", field=field)
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Invalid(
            f"{field}: must be a number of seconds (got {value!r})", field=field
        ) from None
    if not math.isfinite(seconds) or not 0 <= seconds <= settings.MAX_WAIT:
        raise Invalid(
            f"{field}: must be between 0 and {settings.MAX_WAIT:g} seconds (got {value!r})",
            field=field,
        )
    return seconds


def flag(value: object, field: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{field}: must be true or false (got {value!r})", field=field)
    return value


def choice(value: str | None, field: str, choices: set[str]) -> str | None:
    if value is None or value == "":
        return None
    if value not in choices:
        raise Invalid(
            f"{field}: must be one of {', '.join(sorted(choices))} (got {value!r})", field=field
        )
    return value


def page(request: Request) -> tuple[int, int | None]:
    """``?limit=`` (default 100, at most 1000) and ``?cursor=`` of a list."""
    raw_limit = request.query_params.get("limit") or "100"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise Invalid(f"limit: must be 1 to 1000 (got {raw_limit!r})", field="limit")
    raw_cursor = request.query_params.get("cursor") or None
    if raw_cursor is not None and not (raw_cursor.isdigit() and len(raw_cursor) < 19):
        raise Invalid(f"cursor: is not a cursor this server gave (got {raw_cursor!r})", "cursor")
    return int(raw_limit), int(raw_cursor) if raw_cursor is not None else None
