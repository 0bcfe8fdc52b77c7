"""After a failed attempt: when the task may run again, and where first.

A platform failure (the node reported one, or its lease expired) is most likely the node's: the
task is retried elsewhere first. No node takes it for `KOLEJKA_RETRY_DELAY` (doubled for each
attempt so far, at most `KOLEJKA_RETRY_DELAY_MAX`), so that a task a node fails at once does not
burn its attempts in milliseconds; the node that failed it waits `KOLEJKA_RETRY_AVOID`, so that
another node gets the next attempt if there is one, and a grid of one node still retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q


def spacing(attempts: int) -> timedelta:
    """How long no node takes a task whose `attempts`-th attempt just failed."""
    seconds = settings.RETRY_DELAY * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.RETRY_DELAY_MAX))


def after_failure(attempts: int, node_id: int | None, now: datetime, error: str) -> dict[str, Any]:
    """The task's fields after its `attempts`-th attempt failed on node `node_id` with `error`."""
    wait = spacing(attempts)
    return {
        "not_before": now + wait,
        "avoid_node_id": node_id,
        "avoid_until": now + max(wait, timedelta(seconds=settings.RETRY_AVOID)),
        "last_failure": error,
    }


CLEARED: dict[str, Any] = {
    "not_before": None,
    "avoid_node_id": None,
    "avoid_until": None,
    "last_failure": None,
}


def claimable(node_id: int, now: datetime) -> Q:
    """Queued tasks node `node_id` may take at `now` (a clause of the claim's query)."""
    return (Q(not_before__isnull=True) | Q(not_before__lte=now)) & (
        ~Q(avoid_node_id=node_id) | Q(avoid_node_id__isnull=True) | Q(avoid_until__lte=now)
    )
