"""The task's ``callback_url``: the server calls it when the task is done or failed.

The call is a POST of ``{"key", "state", "id"}`` made after the transaction commits, from a
background thread, once, with a 10 s timeout and no redirects; a failure is logged, never
retried, and never changes the task. The client fetches the result itself, with its token.
A task submitted through the legacy API gets the original's call instead: ``{"task", "result"}``
in the original's shapes (`legacy.callback_body`), when its result comes (the original had no
failed tasks, so a failed legacy task is not called back).
``KOLEJKA_CALLBACKS=false`` turns callbacks off (e.g. where the server must not reach out).
"""

from __future__ import annotations

import logging
import threading

import requests
from django.conf import settings
from django.db import transaction

from kolejka.common import TaskState

from . import legacy
from .models import Task

log = logging.getLogger(__name__)
TIMEOUT = 10


def _call(url: str, key: str, body: dict[str, object]) -> None:
    try:
        answer = requests.post(url, json=body, timeout=TIMEOUT, allow_redirects=False)
        if answer.status_code >= 400:
            log.warning("callback %s for %s answered %s", url, key, answer.status_code)
    except requests.RequestException as error:
        log.warning("callback %s for %s failed: %s", url, key, error)


def finished(task: Task, state: str) -> None:
    """Call `task`'s callback URL, if it has one, once the current transaction commits."""
    url = task.spec.get("callback_url") if isinstance(task.spec, dict) else None
    if not url or not settings.CALLBACKS:
        return
    if task.legacy:
        if state != TaskState.DONE:
            return
        body = legacy.callback_body(task)
    else:
        body = {"key": task.key, "state": state, "id": task.spec.get("id")}
    key = task.key
    transaction.on_commit(
        lambda: threading.Thread(target=_call, args=(url, key, body), daemon=True).start()
    )
