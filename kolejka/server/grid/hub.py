"""The long-polls waiting in one server process (`wakeup` feeds it): each topic wakes all its
waiters; a queued task (`Offer`) wakes one claim whose node fits it, the oldest, and goes on to
the next fitting claim (up to `TRIES`) when the woken one takes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kolejka.common import Task as TaskSpec

log = logging.getLogger(__name__)

# Claims a queued task wakes in a process before it waits for the next sweep.
TRIES = 3
Fits = Callable[[TaskSpec], bool]


class Waiter:
    """One waiting long-poll, woken by `wake`; a claim's (`fits` given) also holds the tasks it
    was woken for (`offers`) until its next check."""

    def __init__(
        self, topics: list[str], fits: Fits | None, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.topics = topics
        self.fits = fits
        self.offers: list[Offer] = []
        self._loop = loop
        self._sync = threading.Event()
        self._async = asyncio.Event() if loop is not None else None

    def wake(self) -> None:
        if self._async is None:
            self._sync.set()
            return
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._async.set)
        except RuntimeError:
            pass  # its loop closed: the poll is over

    def sleep(self, timeout: float) -> None:
        self._sync.wait(timeout)
        self._sync.clear()

    async def wait(self, timeout: float) -> None:
        assert self._async is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._async.wait(), timeout)
        self._async.clear()


@dataclass
class Offer:
    """A queued task (`spec` `None`: one of many, its demand unknown) looking for a claim."""

    task_id: int
    spec: TaskSpec | None
    tries: int = TRIES
    tried: set[int] = field(default_factory=set)


class Hub:
    """The waiters of this process: by topic, and the claims in the order they came."""

    def __init__(self, feed: Callable[[Hub], None]) -> None:
        self._feed = feed
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}
        self._claims: dict[Waiter, None] = {}
        self._listener: threading.Thread | None = None

    def publish(self, topic: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(topic, ()))
        for waiter in waiters:
            waiter.wake()

    def publish_all(self) -> None:
        with self._lock:
            waiters = {waiter for group in self._waiters.values() for waiter in group}
        for waiter in waiters:
            waiter.wake()

    def has_waiters(self) -> bool:
        with self._lock:
            return bool(self._waiters)

    def has_claims(self) -> bool:
        with self._lock:
            return bool(self._claims)

    def subscribe(self, waiter: Waiter) -> None:
        self.listen()
        with self._lock:
            for topic in waiter.topics:
                self._waiters.setdefault(topic, set()).add(waiter)
            if waiter.fits is not None:
                self._claims[waiter] = None

    def unsubscribe(self, waiter: Waiter) -> None:
        """`waiter` waits no more; the tasks it was woken for go to the next fitting claims."""
        with self._lock:
            for topic in waiter.topics:
                group = self._waiters.get(topic)
                if group is not None:
                    group.discard(waiter)
                    if not group:
                        del self._waiters[topic]
            self._claims.pop(waiter, None)
            self._pass_on(waiter, took=False)

    def offer(self, offers: list[Offer]) -> None:
        """Wake one fitting claim for each of `offers`."""
        with self._lock:
            for offer in offers:
                self._place(offer)

    def checked(self, waiter: Waiter, took: bool) -> None:
        """`waiter`'s check ran: what it took uses up one task it was woken for; the others go
        on to the next fitting claims."""
        with self._lock:
            self._pass_on(waiter, took)

    def _pass_on(self, waiter: Waiter, took: bool) -> None:
        offers, waiter.offers = waiter.offers, []
        if took and offers:
            offers.pop(0)
        for offer in offers:
            offer.tried.add(id(waiter))
            self._place(offer)

    def _place(self, offer: Offer) -> None:
        """Under the lock: wake the oldest fitting claim not tried yet, one not woken for another
        task if there is one; none fits: the task waits for the next sweep."""
        if len(offer.tried) >= offer.tries:
            return
        busy = None
        for waiter in self._claims:
            if id(waiter) in offer.tried or not _fits(waiter, offer):
                continue
            if not waiter.offers:
                waiter.offers.append(offer)
                waiter.wake()
                return
            busy = busy or waiter
        if busy is not None:
            busy.offers.append(offer)

    def listen(self) -> None:
        """Start this process's thread that feeds the hub from the database, if not running."""
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listener = threading.Thread(
                target=self._feed, args=(self,), name="kolejka-wakeup", daemon=True
            )
            self._listener.start()


def _fits(waiter: Waiter, offer: Offer) -> bool:
    if offer.spec is None:
        return True
    assert waiter.fits is not None
    try:
        return waiter.fits(offer.spec)
    except Exception:
        log.exception("could not tell whether a claim fits task %s; waking it", offer.task_id)
        return True
