"""Long-polls under ASGI: a queued task wakes one fitting claim, a claim whose client went away
takes nothing, a busy server answers 503 at once. One server process each, so that what its
metrics count is what one hub did."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from .flows import claim, register, submit
from .harness import Server, Template, serve

DEADLINE = 30


@pytest.fixture
def one(templates: dict[str, Template], backend: str, tmp_path: Path) -> Iterator[Server]:
    with serve(templates[backend], tmp_path / "data", workers=1, threads=4) as running:
        yield running


def metric(server: Server, name: str) -> float:
    """The sum of the samples of `name` in the server's metrics."""
    text = server.api("ada").session.get(f"{server.url}/metrics", timeout=30).text
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def polls(server: Server, doing: str) -> float:
    return metric(server, f'kolejka_polls{{doing="{doing}"}}')


def claims_made(server: Server) -> float:
    return metric(server, "kolejka_claim_seconds_count")


def until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"not in {DEADLINE} s: {what}"
        time.sleep(0.02)


class Waiting(threading.Thread):
    """A foreman's claim for `node`, waiting up to `wait` seconds."""

    def __init__(self, server: Server, node: str, wait: float = 50, **body: Any) -> None:
        super().__init__(daemon=True)
        self.api, self.node, self.body = server.api("fred"), node, {"wait": wait, **body}
        self.answer: dict[str, Any] | None = None

    def run(self) -> None:
        # A claim still waiting when its test ends sees its server stop.
        with contextlib.suppress(requests.ConnectionError):
            self.answer = claim(self.api, self.node, **self.body)

    def key(self) -> str | None:
        self.join(DEADLINE)
        assert self.answer is not None
        return self.answer["task"] and self.answer["task"]["key"]


def raw_claim(server: Server, node: str, wait: float) -> socket.socket:
    """A claim sent on a socket of its own, which the test closes to go away."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    body = json.dumps({"wait": wait}).encode()
    sock.sendall(
        f"POST /api/v1/nodes/{node}/claim/ HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Token {server.tokens['fred']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def held_by_server(server: Server, client_port: int) -> bool:
    """Whether the server still holds its end of the connection from `client_port`."""
    processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children()]
    return any(
        conn.raddr and conn.raddr.port == client_port
        for process in processes
        for conn in process.net_connections(kind="tcp")
    )


@contextmanager
def claims_stuck(server: Server) -> Iterator[None]:
    """Hold the database so that a claim's check cannot take its lease until the block ends."""
    if server.backend == "sqlite":
        held = sqlite3.connect(server.data / "kolejka.db", isolation_level=None)
        held.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            held.execute("ROLLBACK")
            held.close()
        return
    import psycopg

    with psycopg.connect(server.env["DATABASE_URL"]) as held:
        held.execute("LOCK TABLE kolejka_lease IN ACCESS EXCLUSIVE MODE")
        yield
        held.rollback()


def test_it_wakes_one_fitting_claim_for_a_queued_task_not_every_claim(one: Server):
    fred, alice = one.api("fred"), one.api("alice")
    small = {"cpus": 1, "memory": "1G"}
    for index in range(6):
        register(fred, f"small-{index}", capacity=small)
    register(fred, "big", capacity={"cpus": 8, "memory": "16G"})
    waiters = [Waiting(one, f"small-{index}", free=small) for index in range(6)]
    waiters.append(Waiting(one, "big"))
    for waiter in waiters:
        waiter.start()
    until(lambda: polls(one, "waiting") == 7, "all claims wait")
    before = claims_made(one)
    wide = submit(alice, limits={"cpus": 4, "memory": "2G"})
    assert waiters[-1].key() == wide["key"]
    # Only the big node's claim looked: the small ones, older, fit no task of 4 cpus.
    assert claims_made(one) == before + 1
    assert all(waiter.is_alive() for waiter in waiters[:-1])
    narrow = submit(alice, limits={"cpus": 1, "memory": "1G"})
    until(lambda: any(not waiter.is_alive() for waiter in waiters[:-1]), "a small node claims")
    assert [waiter.key() for waiter in waiters[:-1] if not waiter.is_alive()] == [narrow["key"]]
    assert claims_made(one) == before + 2


def test_it_passes_a_task_on_when_the_woken_claim_does_not_take_it(one: Server):
    fred, alice, ada = one.api("fred"), one.api("alice"), one.api("ada")
    register(fred, "drained")
    register(fred, "open")
    ada.post("nodes/drained/drain/", json={"drain": True})
    first, second = Waiting(one, "drained"), Waiting(one, "open")
    first.start()
    until(lambda: polls(one, "waiting") == 1, "the first claim waits")
    second.start()
    until(lambda: polls(one, "waiting") == 2, "both claims wait")
    before = claims_made(one)
    # The hub does not read drains: it wakes the oldest claim that fits, the drained node's,
    # which takes nothing and passes the task on.
    task = submit(alice)
    assert second.key() == task["key"]
    assert claims_made(one) == before + 2
    assert first.is_alive()


def test_it_gives_a_task_to_a_live_claim_not_to_one_whose_client_went_away(one: Server):
    fred, alice = one.api("fred"), one.api("alice")
    register(fred, "gone")
    register(fred, "live")
    sock = raw_claim(one, "gone", wait=50)
    until(lambda: polls(one, "waiting") == 1, "the first claim waits")
    sock.close()
    until(lambda: polls(one, "waiting") == 0, "the server lets the claim of a client gone")
    live = Waiting(one, "live")
    live.start()
    until(lambda: polls(one, "waiting") == 1, "the live claim waits")
    task = submit(alice)
    assert live.key() == task["key"]
    shown = alice.get(f"tasks/{task['key']}/").json()
    assert (shown["node"], shown["attempts"]) == ("live", 1)


def test_it_hands_back_at_once_a_task_claimed_for_a_client_that_went_away(one: Server):
    fred, alice = one.api("fred"), one.api("alice")
    register(fred, "gone")
    register(fred, "live")
    task = submit(alice)
    with claims_stuck(one):
        sock = raw_claim(one, "gone", wait=0)
        until(lambda: polls(one, "checking") == 1, "the claim's check runs")
        client_port = sock.getsockname()[1]
        sock.close()
        until(lambda: not held_by_server(one, client_port), "the server sees the client go")
    # The check goes on now and takes the task; its answer has nowhere to go, so it goes back.
    until(lambda: claims_made(one) == 1, "the claim's check ends")

    def shown() -> dict[str, Any]:
        return dict(alice.get(f"tasks/{task['key']}/").json())

    until(lambda: shown()["state"] == "queued", "the task is handed back")
    assert shown()["attempts"] == 0
    got = claim(fred, "live")
    assert got["task"]["key"] == task["key"]
    assert alice.get(f"tasks/{task['key']}/").json()["attempts"] == 1


def test_it_answers_503_with_retry_after_at_once_when_no_thread_is_free(
    templates: dict[str, Template], backend: str, tmp_path: Path
):
    with serve(
        templates[backend], tmp_path / "data", workers=1, threads=1, KOLEJKA_BUSY_WAIT="0.5s"
    ) as server:
        fred, alice = server.api("fred"), server.api("alice")
        register(fred, "n1")
        register(fred, "n2")
        task = submit(alice)
        stuck = Waiting(server, "n1", wait=0)
        with claims_stuck(server):
            stuck.start()
            until(lambda: polls(server, "checking") == 1, "the first claim's check runs")
            started = time.monotonic()
            refused = fred.post("nodes/n2/claim/", json={"wait": 30})
            took = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "2"
            assert refused.json()["code"] == "unavailable"
            assert took < 10
            # Ordinary requests do not wait for the long-polls' threads.
            assert fred.get("auth/me/").status_code == 200
        assert stuck.key() == task["key"]
