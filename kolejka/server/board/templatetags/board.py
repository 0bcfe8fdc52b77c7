"""Filters of the board's templates: values as the API writes them, shown for people."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.template.defaultfilters import filesizeformat

from kolejka.common import SpecError
from kolejka.common.units import parse_memory

register = template.Library()


@register.filter
def pretty(value: Any) -> str:
    """`value` as indented JSON (the API's own spelling: true, null)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def size(value: Any) -> str:
    """A size as the task format writes it (``24683584K``, a number of bytes) in binary units."""
    if value in (None, ""):
        return "\u2013"  # an en dash, as the pages show a missing value
    try:
        return str(filesizeformat(parse_memory(value, "size")))
    except SpecError:
        return str(value)


@register.filter
def moment(value: Any) -> datetime | None:
    """An ISO 8601 time (as serializers write them) as a `datetime`, for Django's date filters."""
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
