"""`Notify`: one entry of a task's or a batch's ``notify`` list, where the server tells of an
event: a webhook (``{"webhook": URL, "events": [...], "format": "json" | "slack"}``) or an
e-mail (``{"email": ADDRESS, "events": [...]}``).

A task's events are ``done``, ``failed`` and ``cancelled`` (all three when `events` is left out);
a batch's is ``complete`` (all of its tasks final). This module checks the shape only: whether the
server may reach a webhook's host is the server's rule (its allow-list), checked at submission.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SpecError
from .units import parse_str

TASK_EVENTS = ("done", "failed", "cancelled")
BATCH_EVENTS = ("complete",)
FORMATS = ("json", "slack")
MAX_ENTRIES = 8

URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
# The shape of an address only (one @, a dotted domain): whether it exists is the mail's business.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")


@dataclass(frozen=True)
class Notify:
    """Tell `webhook` (a URL) or `email` (an address) of `events`; `format` is a webhook's body."""

    webhook: str | None = None
    email: str | None = None
    events: tuple[str, ...] = TASK_EVENTS
    format: str = "json"

    @property
    def target(self) -> str:
        return self.webhook or self.email or ""

    @classmethod
    def from_value(cls, value: object, field: str, events: tuple[str, ...]) -> Notify:
        """One entry at `field`, its events among `events`; `SpecError` naming the bad key."""
        if not isinstance(value, Mapping):
            raise SpecError(field, value, 'must be {"webhook": URL} or {"email": ADDRESS}')
        unknown = sorted(set(value) - {"webhook", "email", "events", "format"})
        if unknown:
            raise SpecError(f"{field}.{unknown[0]}", value[unknown[0]], "unknown key")
        if ("webhook" in value) == ("email" in value):
            raise SpecError(field, value, 'must have exactly one of "webhook" or "email"')
        chosen = _events(value.get("events", list(events)), f"{field}.events", events)
        if "email" in value:
            email = parse_str(value["email"], f"{field}.email")
            if not _EMAIL.match(email) or len(email) > 254:
                raise SpecError(f"{field}.email", email, "must be an e-mail address")
            if "format" in value:
                raise SpecError(f"{field}.format", value["format"], "is for webhooks only")
            return cls(email=email, events=chosen)
        url = parse_str(value["webhook"], f"{field}.webhook")
        if not URL.match(url) or len(url) > 2000:
            raise SpecError(f"{field}.webhook", url, "must be an http(s) URL")
        form = parse_str(value.get("format", "json"), f"{field}.format")
        if form not in FORMATS:
            raise SpecError(f"{field}.format", form, f"must be one of {', '.join(FORMATS)}")
        return cls(webhook=url, events=chosen, format=form)

    def to_dict(self) -> dict[str, Any]:
        if self.email is not None:
            return {"email": self.email, "events": list(self.events)}
        return {"webhook": self.webhook, "events": list(self.events), "format": self.format}


def _events(value: object, field: str, known: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(field, value, f"must be a non-empty list of: {', '.join(known)}")
    for event in value:
        if event not in known:
            raise SpecError(field, event, f"unknown event; known: {', '.join(known)}")
    return tuple(event for event in known if event in value)


def parse_notify(
    value: object, field: str = "notify", events: tuple[str, ...] = TASK_EVENTS
) -> tuple[Notify, ...]:
    """A ``notify`` list (at most `MAX_ENTRIES`); `SpecError` naming the first bad entry."""
    if not isinstance(value, list):
        raise SpecError(field, value, "must be a list of notification targets")
    if len(value) > MAX_ENTRIES:
        raise SpecError(field, len(value), f"at most {MAX_ENTRIES} entries")
    return tuple(Notify.from_value(item, f"{field}[{i}]", events) for i, item in enumerate(value))
