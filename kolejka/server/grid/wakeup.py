"""Wake-ups for long-polls, across server processes.

A change that a long-poll may wait for (a task queued, a task's state changed) calls `notify`
inside its transaction. Waiters in the same process wake when it commits; other processes learn
it from the database: PostgreSQL delivers ``NOTIFY`` on commit to one listening connection per
process, and on SQLite one thread per process polls the `Wakeup` table every 20 ms. Either way a
waiter also looks at the database every ``KOLEJKA_POLL_INTERVAL``, so a lost wake-up costs latency,
never a stuck poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from .models import Wakeup

log = logging.getLogger(__name__)

QUEUE = "queue"
CHANNEL = "kolejka"
SQLITE_POLL = 0.02

T = TypeVar("T")


def task_topic(task_id: int) -> str:
    return f"task:{task_id}"


def log_topic(task_id: int) -> str:
    """New output of the task (`logs.append`): apart from `task_topic`, so that each chunk
    does not wake the waiters for the task's end."""
    return f"log:{task_id}"


class Hub:
    """The waiters of this process, by topic; one background thread feeds it from the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._listener: threading.Thread | None = None

    def publish(self, topic: str) -> None:
        with self._lock:
            events = list(self._waiters.get(topic, ()))
        for event in events:
            event.set()

    def publish_all(self) -> None:
        with self._lock:
            events = [event for waiters in self._waiters.values() for event in waiters]
        for event in events:
            event.set()

    def has_waiters(self) -> bool:
        with self._lock:
            return any(self._waiters.values())

    @contextmanager
    def subscribe(self, topics: list[str]) -> Iterator[threading.Event]:
        """An event set whenever one of `topics` is notified, while the block runs."""
        self._start_listener()
        event = threading.Event()
        with self._lock:
            for topic in topics:
                self._waiters.setdefault(topic, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                for topic in topics:
                    waiters = self._waiters.get(topic)
                    if waiters is not None:
                        waiters.discard(event)
                        if not waiters:
                            del self._waiters[topic]

    def _start_listener(self) -> None:
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            target = _listen_postgres if connection.vendor == "postgresql" else _poll_sqlite
            self._listener = threading.Thread(
                target=target, args=(self,), name="kolejka-wakeup", daemon=True
            )
            self._listener.start()


hub = Hub()


def notify(topic: str) -> None:
    """Wake the long-polls waiting on `topic` once the current transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, topic])
    else:
        Wakeup.objects.create(topic=topic)
    transaction.on_commit(lambda: hub.publish(topic))


def long_poll(topics: list[str], wait: float, check: Callable[[], T | None]) -> T | None:
    """Return `check()` as soon as it is not `None`, trying again on each wake-up of `topics`,
    until `wait` seconds have passed (then the last `None`).

    The database connection goes back to the pool while the poll sleeps, so a thousand sleeping
    polls do not hold a thousand connections.
    """
    if wait <= 0:
        return check()
    deadline = time.monotonic() + wait
    with hub.subscribe(topics) as event:
        while True:
            found = check()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            connection.close()
            event.wait(min(remaining, settings.POLL_INTERVAL))
            event.clear()


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
                for notification in listener.notifies():
                    hub.publish(notification.payload)
        except Exception:
            log.exception("the wake-up listener lost PostgreSQL; long-polls fall back to polling")
            time.sleep(1)


def _poll_sqlite(hub: Hub) -> None:
    last: int | None = None
    while True:
        time.sleep(SQLITE_POLL)
        try:
            if not hub.has_waiters():
                # A new waiter looks at the database itself first: old wake-ups are moot.
                last = None
                continue
            if last is None:
                last = Wakeup.objects.order_by("-id").values_list("id", flat=True).first() or 0
                continue
            for wakeup_id, topic in Wakeup.objects.filter(id__gt=last).values_list("id", "topic"):
                last = wakeup_id
                hub.publish(topic)
        except Exception:
            log.exception("the wake-up poller failed; retrying")
            close_old_connections()
            time.sleep(1)
