"""The per-owner, per-priority count of queued tasks that claims walk instead of the queue."""

from __future__ import annotations

from collections import Counter

from django.db import connection

from .models import Backlog

_UPSERT = (
    f"INSERT INTO {Backlog._meta.db_table} (owner_id, priority, queued) VALUES (%s, %s, %s) "
    f"ON CONFLICT (owner_id, priority) DO UPDATE SET queued = {Backlog._meta.db_table}.queued "
    "+ excluded.queued"
)


def add(counts: Counter[tuple[int, int]]) -> None:
    """Add `counts` (by (owner id, priority); negative to take away), in the caller's
    transaction. One statement per pair, so concurrent changes add up instead of overwriting."""
    with connection.cursor() as cursor:
        for (owner, priority), count in sorted(counts.items()):
            if count:
                cursor.execute(_UPSERT, [owner, priority, count])


def queued(owner: int, priority: int, count: int = 1) -> None:
    add(Counter({(owner, priority): count}))
