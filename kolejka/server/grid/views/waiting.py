"""The routes of the long-polls (a claim, a task's state, its result, its log) as async views.

Each runs its DRF view, unchanged, in one of ``KOLEJKA_THREADS`` threads of this process: the
view authenticates, validates with its serializers, checks and answers. When its long-poll finds
nothing yet (`wakeup.Deferred`), the route frees the thread, awaits the poll's waiter on the event
loop and runs the view again. So a thousand waiting polls hold no thread and no database
connection, and the threads bound how many run at once: a poll that finds none free within
``KOLEJKA_BUSY_WAIT`` answers 503 with ``Retry-After`` at once instead of queueing. A client that
goes away (ASGI ``http.disconnect``: Django cancels the view) takes nothing; if it went while its
check ran, what the check took is handed back (`wakeup.on_undelivered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import metrics, wakeup
from ..errors import Unavailable, error_body

log = logging.getLogger(__name__)

View = Callable[..., HttpResponse]
Route = Callable[..., Coroutine[Any, Any, HttpResponse]]

_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def threads() -> ThreadPoolExecutor:
    """This process's threads for the long-polls' views (made after the fork of `serve`)."""
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(settings.POLL_THREADS, thread_name_prefix="kolejka-poll")
        return _threads


def waiting(view: View) -> Route:
    """The async route of `view`, a DRF view whose long-polls wait through `wakeup.long_poll`."""

    @functools.wraps(view)
    async def route(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.body  # noqa: B018  (read once: each run of the view parses it again)
        poll = wakeup.Poll(asyncio.get_running_loop())
        try:
            while True:
                try:
                    return await _run(poll, functools.partial(view, request, *args, **kwargs))
                except wakeup.Deferred:
                    assert poll.waiter is not None
                    with metrics.POLLS.labels("waiting").track_inprogress():
                        await poll.waiter.wait(wakeup.sleep_for(poll))
        finally:
            if poll.waiter is not None:
                wakeup.hub.unsubscribe(poll.waiter)

    return route


async def _run(poll: wakeup.Poll, view: Callable[[], HttpResponse]) -> HttpResponse:
    """`view()` in one of the threads, as a run of `poll`; 503 if none is free in time."""
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    def call() -> HttpResponse:
        loop.call_soon_threadsafe(started.set)
        token = wakeup.current.set(poll)
        try:
            with metrics.POLLS.labels("checking").track_inprogress():
                return view()
        finally:
            wakeup.current.reset(token)
            close_old_connections()  # back to the pool (PostgreSQL); SQLite's stays open

    future = threads().submit(call)
    try:
        await asyncio.wait_for(started.wait(), settings.BUSY_WAIT)
    except TimeoutError:
        if future.cancel():
            return busy()
    except asyncio.CancelledError:
        if future.cancel():
            raise
        await _undelivered(poll, future)
        raise
    try:
        return await asyncio.shield(asyncio.wrap_future(future))
    except asyncio.CancelledError:
        await _undelivered(poll, future)
        raise


async def _undelivered(poll: wakeup.Poll, future: Future[HttpResponse]) -> None:
    """The client went away while `future` ran: once it ends, undo what it took."""
    # Its client is gone: what it answered (a DRF error, `Deferred`) goes nowhere.
    with contextlib.suppress(Exception):
        await asyncio.wrap_future(future)
    if not poll.undo:
        return

    def undo() -> None:
        try:
            for step in poll.undo:
                try:
                    step()
                except Exception:
                    log.exception("could not hand back what a claim took for a client gone")
        finally:
            close_old_connections()

    await asyncio.get_running_loop().run_in_executor(threads(), undo)


def busy() -> JsonResponse:
    """503: no thread free for a long-poll's check within ``KOLEJKA_BUSY_WAIT``."""
    error = Unavailable("the server is busy; try again in a moment")
    answer = JsonResponse(error_body(error), status=503)
    answer["Retry-After"] = str(Unavailable.wait)
    answer["Kolejka-Max-Wait"] = f"{settings.MAX_WAIT:g}"
    return answer
