"""Wake-ups for long-polls, across server processes.

A change that a long-poll may wait for calls `notify` (a task's state, its log) or `queued` (tasks
queued) inside its transaction. Waiters in the same process wake when it commits; other processes
learn it from the database: PostgreSQL delivers ``NOTIFY`` on commit to one listening connection
per process, and on SQLite one thread per process looks every 20 ms whether another connection
committed (``PRAGMA data_version``, no query) and only then reads the new `Wakeup` rows.

A task or log topic wakes every waiter on it. A queued task wakes one waiting claim whose node
fits it (`Hub.offer`), oldest first; a claim woken for it that takes nothing passes it on to the
next fitting one, up to `TRIES` claims. Each process does so with its own claims, so a task wakes
one claim per server process, not every claim. A claim waits for no timer of its own: once every
``KOLEJKA_POLL_INTERVAL`` each process offers the oldest queued tasks again (`_sweep`), and the
other waiters look at the database that often; so a lost wake-up costs latency, never a stuck poll.

A long-poll waits in one of two ways: `long_poll` sleeps in its thread (WSGI), or, run by the
ASGI route of `views.waiting` with a `Poll` in `current`, it checks once and raises `Deferred`,
and the route awaits the waiter on the event loop, holding no thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from kolejka.common import SpecError
from kolejka.common import Task as TaskSpec

from .hub import TRIES, Fits, Hub, Offer, Waiter
from .models import State, Task, Wakeup

log = logging.getLogger(__name__)

CHANNEL = "kolejka"
SQLITE_POLL = 0.02
QUEUE = "queue:"
# Tasks queued at once that wake-ups name one by one; more wake as many claims, fitting or not.
MANY = 32
_origins: dict[int, str] = {}

T = TypeVar("T")


def origin() -> str:
    """This process's name in its wake-ups: another process's listener wakes its own waiters on
    them, this one already woke its own on commit. Made after `serve` forks its workers."""
    return _origins.setdefault(os.getpid(), secrets.token_hex(4))


def task_topic(task_id: int) -> str:
    return f"task:{task_id}"


def log_topic(task_id: int) -> str:
    """New output of the task (`logs.append`): apart from `task_topic`, so that each chunk
    does not wake the waiters for the task's end."""
    return f"log:{task_id}"


def node_topic(node_id: int) -> str:
    """The node changed (registered again, drained, healthy again): its own claims look again."""
    return f"node:{node_id}"


class Deferred(Exception):
    """A long-poll found nothing yet: its ASGI route awaits its waiter and runs it again."""


def _feed(hub: Hub) -> None:
    """This process's thread that feeds `hub` from the database."""
    if connection.vendor == "postgresql":
        _listen_postgres(hub)
    else:
        _poll_sqlite(hub)


hub = Hub(_feed)


def notify(topic: str) -> None:
    """Wake the long-polls waiting on `topic` once the current transaction commits."""
    _send([topic])
    transaction.on_commit(lambda: hub.publish(topic))


def queued(task_ids: Collection[int]) -> None:
    """Wake a fitting claim for each of the tasks `task_ids` once the current transaction
    commits (as many claims, fitting or not, when they are more than `MANY`)."""
    if len(task_ids) > MANY:
        queued_many(len(task_ids))
    elif task_ids:
        _queued([f"{QUEUE}{task_id}" for task_id in task_ids])


def queued_many(count: int) -> None:
    """Wake `count` claims once the current transaction commits: `count` tasks were queued."""
    if count:
        _queued([f"{QUEUE}+{count}"])


def _queued(topics: list[str]) -> None:
    _send(topics)
    transaction.on_commit(lambda: _receive(hub, topics))


def _send(topics: list[str]) -> None:
    """Tell the other server processes, in the current transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for topic in topics:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{topic}@{origin()}"])
    else:
        Wakeup.objects.bulk_create(Wakeup(topic=f"{topic}@{origin()}") for topic in topics)


def _receive(hub: Hub, topics: list[str]) -> None:
    """Wake this process's waiters for `topics`."""
    named: list[int] = []
    for topic in topics:
        if not topic.startswith(QUEUE):
            hub.publish(topic)
        elif topic[len(QUEUE) :].startswith("+"):
            count = int(topic[len(QUEUE) + 1 :])
            hub.offer([Offer(-index - 1, None) for index in range(count)])
        else:
            named.append(int(topic[len(QUEUE) :]))
    if named and hub.has_claims():
        hub.offer(_offers(Task.objects.filter(pk__in=named, state=State.QUEUED)))


def _offers(tasks: Any, tries: int = TRIES) -> list[Offer]:
    """`tasks` (a query of queued tasks) as offers, their demand read once."""
    offers = []
    for task_id, spec in tasks.values_list("id", "spec"):
        try:
            offers.append(Offer(task_id, TaskSpec.from_dict(spec), tries))
        except SpecError:
            offers.append(Offer(task_id, None, tries))
    return offers


def _sweep(hub: Hub) -> None:
    """The fallback of the claims: offer the oldest tasks queued for longer than a sweep again,
    to one claim each (and reap expired leases, which queues their tasks)."""
    if not hub.has_claims():
        return
    from . import leases

    leases.reap_due()
    before = timezone.now() - timedelta(seconds=settings.POLL_INTERVAL)
    waiting = Task.objects.filter(state=State.QUEUED, updated__lt=before).order_by("id")
    hub.offer(_offers(waiting[:MANY], tries=1))
    close_old_connections()


current: contextvars.ContextVar[Poll | None] = contextvars.ContextVar("poll", default=None)


@dataclass
class Poll:
    """One ASGI long-poll across the runs of its view: its deadline and waiter, set by the first
    run, and what to undo if its answer cannot be delivered (`on_undelivered`)."""

    loop: asyncio.AbstractEventLoop
    deadline: float | None = None
    waiter: Waiter | None = None
    undo: list[Callable[[], object]] = field(default_factory=list)

    def remaining(self) -> float:
        return 0.0 if self.deadline is None else self.deadline - time.monotonic()


def on_undelivered(undo: Callable[[], object]) -> None:
    """Call `undo` if the answer of the current long-poll never reaches its client (it went
    away while the check ran). Outside an ASGI long-poll, nothing."""
    poll = current.get()
    if poll is not None:
        poll.undo.append(undo)


def long_poll(
    topics: list[str], wait: float, check: Callable[[], T | None], fits: Fits | None = None
) -> T | None:
    """Return `check()` as soon as it is not `None`, trying again on each wake-up of `topics`
    (with `fits`, of a queued task it says fits: a claim), until `wait` seconds have passed
    (then `None`). Under an ASGI `Poll`, raise `Deferred` instead of sleeping.

    The database connection goes back to the pool while the poll sleeps, so a thousand sleeping
    polls do not hold a thousand connections.
    """
    if wait <= 0:
        return check()
    poll = current.get()
    if poll is not None:
        return _deferred(poll, topics, wait, check, fits)
    deadline = time.monotonic() + wait
    waiter = Waiter(topics, fits, None)
    hub.subscribe(waiter)
    try:
        while True:
            found = check()
            hub.checked(waiter, found is not None)
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            connection.close()
            waiter.sleep(min(remaining, _interval(fits)))
    finally:
        hub.unsubscribe(waiter)


def _deferred(
    poll: Poll, topics: list[str], wait: float, check: Callable[[], T | None], fits: Fits | None
) -> T | None:
    if poll.waiter is None:
        poll.deadline = time.monotonic() + wait
        poll.waiter = Waiter(topics, fits, poll.loop)
        hub.subscribe(poll.waiter)
    elif poll.remaining() <= 0:
        return None
    found = check()
    hub.checked(poll.waiter, found is not None)
    if found is None and poll.remaining() > 0:
        raise Deferred
    return found


def _interval(fits: Fits | None) -> float:
    """How long a waiter sleeps without a wake-up: a claim until its deadline (the sweep offers
    it the tasks it missed), the others ``KOLEJKA_POLL_INTERVAL``."""
    return float("inf") if fits is not None else settings.POLL_INTERVAL


def sleep_for(poll: Poll) -> float:
    """How long the ASGI route of `poll` awaits its waiter before running its view again."""
    assert poll.waiter is not None
    return max(0.0, min(poll.remaining(), _interval(poll.waiter.fits)))


def _listen_postgres(hub: Hub) -> None:
    import psycopg

    params = connection.settings_dict
    while True:
        try:
            with psycopg.connect(
                dbname=params["NAME"],
                user=params["USER"] or None,
                password=params["PASSWORD"] or None,
                host=params["HOST"] or None,
                port=params["PORT"] or None,
                autocommit=True,
            ) as listener:
                listener.execute(f"LISTEN {CHANNEL}")
                # Whatever was notified while we were not listening: everyone looks again.
                hub.publish_all()
                swept = time.monotonic()
                while True:
                    # Up to the next sweep for the first, and what came in the same packet.
                    notifies = listener.notifies(timeout=settings.POLL_INTERVAL, stop_after=1)
                    _deliver(hub, [notification.payload for notification in notifies])
                    if time.monotonic() - swept >= settings.POLL_INTERVAL:
                        swept = time.monotonic()
                        _sweep(hub)
        except Exception:
            log.exception("the wake-up listener lost PostgreSQL; long-polls fall back to polling")
            time.sleep(1)


def _deliver(hub: Hub, payloads: list[str]) -> None:
    """Wake-ups from other processes (``topic@sender``) to this process's waiters; the echo of
    this process's own is left out, it was delivered at commit."""
    topics = []
    for payload in payloads:
        topic, _, sender = payload.rpartition("@")
        if sender != origin():
            topics.append(topic)
    if topics:
        _receive(hub, topics)
        close_old_connections()


def _poll_sqlite(hub: Hub) -> None:
    last: int | None = None
    held: sqlite3.Connection | None = None
    version = None
    swept = time.monotonic()
    table = Wakeup._meta.db_table
    while True:
        time.sleep(SQLITE_POLL)
        try:
            if not hub.has_waiters():
                # A new waiter looks at the database itself first: old wake-ups are moot.
                last = None
                continue
            if held is None:
                held = sqlite3.connect(str(settings.DATABASES["default"]["NAME"]), timeout=30)
            # data_version changes only when another connection committed: no query before.
            now_version = held.execute("PRAGMA data_version").fetchone()[0]
            if last is None:
                row = held.execute(f"SELECT max(id) FROM {table}").fetchone()
                last, version = row[0] or 0, now_version
            elif now_version != version:
                version = now_version
                rows = held.execute(
                    f"SELECT id, topic FROM {table} WHERE id > ? ORDER BY id",
                    (last,),
                ).fetchall()
                if rows:
                    last = rows[-1][0]
                _deliver(hub, [payload for _, payload in rows])
            if time.monotonic() - swept >= settings.POLL_INTERVAL:
                swept = time.monotonic()
                _sweep(hub)
        except Exception:
            log.exception("the wake-up poller failed; retrying")
            if held is not None:
                held.close()
                held = None
            close_old_connections()
            time.sleep(1)
