"""A task's callback_url is called when the task is done or failed (a webhook of those two events
with the body it always had, delivered as notifications are: test_notify)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .flows import claim, eventually, finish, register, submit
from .harness import Server


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server recording the JSON bodies POSTed to it."""
    calls: list[dict] = []

    class Record(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            calls.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/done", calls
    server.shutdown()
    server.server_close()


def test_it_calls_the_callback_url_when_the_task_is_done(notifying: Server, listener):
    url, calls = listener
    alice, fred = notifying.api("alice"), notifying.api("fred")
    task = submit(alice, id="job-7", callback_url=url)
    register(fred, "n1")
    finish(fred, claim(fred, "n1")["lease"]["id"])
    eventually(lambda: calls, what="the callback")
    assert calls == [{"key": task["key"], "state": "done", "id": "job-7"}]


def test_it_calls_the_callback_url_when_the_task_fails(notifying: Server, listener):
    url, calls = listener
    alice, fred = notifying.api("alice"), notifying.api("fred")
    task = submit(alice, callback_url=url)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    fred.post(f"leases/{lease}/fail/", json={"error": "disk full", "retry": False})
    eventually(lambda: calls, what="the callback")
    assert calls == [{"key": task["key"], "state": "failed", "id": None}]
