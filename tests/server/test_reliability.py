"""Poison tasks and broken nodes on the server's side: limits no kernel accepts refused at
submission, retries spaced and sent elsewhere first, the lease margin, node health, and the
reason a queued task waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from .flows import claim, eventually, register, submit
from .harness import Server, Template, serve


@pytest.fixture
def spaced(templates: dict[str, Template], backend: str, tmp_path: Path) -> Iterator[Server]:
    """Retries wait 1 s (2 s after a second failure); the failed node waits 60 s."""
    with serve(
        templates[backend], tmp_path / "data", KOLEJKA_RETRY_DELAY="1s", KOLEJKA_RETRY_AVOID="60s"
    ) as running:
        yield running


@pytest.fixture
def margined(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """Leases of 4 s with a margin of 1.9 s; retries at once."""
    with serve(
        templates["sqlite"],
        tmp_path / "data",
        KOLEJKA_LEASE_TTL="4s",
        KOLEJKA_LEASE_MARGIN="1.9s",
        KOLEJKA_RETRY_DELAY="0s",
        KOLEJKA_RETRY_AVOID="0s",
    ) as running:
        yield running


def test_it_refuses_a_limit_no_kernel_accepts_at_submission_naming_it(shared: Server):
    alice = shared.api("alice")
    before = alice.get("tasks/").json()["results"]
    poison = {"image": "kolejka/busybox:latest", "args": ["true"], "limits": {"pids": 2**31}}
    answer = alice.post("tasks/", json={"task": poison})
    assert answer.status_code == 400
    assert answer.json()["field"] == "task.limits.pids"
    assert "at most 4194304" in answer.json()["detail"]
    assert alice.get("tasks/").json()["results"] == before  # nothing queued, no attempt burned


def test_it_spaces_a_retry_and_gives_it_to_another_node_first(spaced: Server):
    alice, fred = spaced.api("alice"), spaced.api("fred")
    task = submit(alice)
    register(fred, "n1")
    register(fred, "n2")
    lease = claim(fred, "n1", wait=0)["lease"]
    failed = fred.post(f"leases/{lease['id']}/fail/", json={"error": "the observer was lost"})
    assert failed.json()["state"] == "queued"
    assert claim(fred, "n2", wait=0)["task"] is None  # not at once: the retry is spaced
    reason = alice.get(f"tasks/{task['key']}/").json()["reason"]
    assert "attempt 1 of 3 failed: the observer was lost" in reason
    assert "the next attempt may start at" in reason
    again = eventually(lambda: claim(fred, "n2", wait=0)["task"], what="n2 to get the retry")
    assert again["key"] == task["key"] and again["attempts"] == 2
    assert claim(fred, "n1", wait=0)["task"] is None  # n1 failed it; it is n2's now anyway


def test_it_keeps_the_failed_node_away_from_the_next_attempt(spaced: Server):
    alice, fred = spaced.api("alice"), spaced.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1", wait=0)["lease"]
    fred.post(f"leases/{lease['id']}/fail/", json={"error": "docker is down"})
    waited = time.monotonic()
    eventually(lambda: time.monotonic() - waited > 1.5, what="the spacing to pass")
    assert claim(fred, "n1", wait=0)["task"] is None  # only n1 could, but it failed it
    shown = alice.get(f"tasks/{task['key']}/").json()
    assert (shown["state"], shown["attempts"]) == ("queued", 1)


def test_it_retries_on_the_same_node_once_its_avoidance_ends(quick_retries: Server):
    alice, fred = quick_retries.api("alice"), quick_retries.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1", wait=0)["lease"]
    fred.post(f"leases/{lease['id']}/fail/", json={"error": "docker is down"})
    again = claim(fred, "n1", wait=0)["task"]
    assert again["key"] == task["key"] and again["attempts"] == 2


def test_it_requeues_an_expired_lease_only_past_the_margin(margined: Server):
    alice, fred = margined.api("alice"), margined.api("fred")
    task = submit(alice)
    register(fred, "n1")
    register(fred, "n2")
    lease = claim(fred, "n1", wait=0)["lease"]
    assert (lease["ttl"], lease["margin"]) == (4.0, 1.9)
    expires = datetime.fromisoformat(lease["expires"].replace("Z", "+00:00")).timestamp()
    eventually(lambda: time.time() > expires + 0.1, what="the lease to expire")
    assert claim(fred, "n2", wait=0)["task"] is None  # expired, but within the margin
    lost = fred.post(f"leases/{lease['id']}/heartbeat/", json={})
    assert lost.status_code == 409  # the node learns it lost the lease: it has killed the task
    again = eventually(lambda: claim(fred, "n2", wait=0)["task"], what="the requeue")
    assert time.time() >= expires + 1.9
    assert again["key"] == task["key"] and again["attempts"] == 2


def test_it_gives_an_unhealthy_node_nothing_until_it_recovers(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    sick = fred.post("nodes/n1/health/", json={"problems": ["the observer does not answer"]})
    assert sick.status_code == 200 and sick.json()["problems"] == ["the observer does not answer"]
    task = submit(alice)
    assert claim(fred, "n1", wait=0)["task"] is None
    reason = alice.get(f"tasks/{task['key']}/").json()["reason"]
    assert "every node that can run it is down, unhealthy or draining" in reason
    assert "n1: unhealthy (the observer does not answer)" in reason
    taken: list[dict] = []
    waiting = threading.Thread(target=lambda: taken.append(claim(fred, "n1", wait=30)))
    waiting.start()  # a claim already waiting when the node recovers gets the task at once
    eventually(lambda: alice.get(f"tasks/{task['key']}/").json()["reason"], what="a reason")
    healthy = fred.post("nodes/n1/health/", json={"problems": []})
    assert healthy.json()["problems"] == []
    waiting.join(timeout=60)
    assert taken and taken[0]["task"]["key"] == task["key"]


def test_it_refuses_a_bad_health_report(grid: Server):
    fred, gina = grid.api("fred"), grid.api("gina")
    register(fred, "n1")
    bad = fred.post("nodes/n1/health/", json={"problems": "sick"})
    assert bad.status_code == 400 and bad.json()["field"] == "problems"
    assert gina.post("nodes/n1/health/", json={"problems": []}).status_code == 404


def test_it_says_why_no_node_can_ever_run_a_task(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    lonely = submit(alice)
    assert alice.get(f"tasks/{lonely['key']}/").json()["reason"] == "no node is registered"
    register(fred, "n1", tags=["cpu:x"])
    huge = submit(alice, limits={"memory": "1P"})
    tagged = submit(alice, requires=["gpu:h100"])
    fine = submit(alice)

    def reason(task: dict) -> str | None:
        return alice.get(f"tasks/{task['key']}/").json()["reason"]

    assert reason(huge) == "no registered node can ever run it: n1: needs memory " + (
        f"{2**50}, {8 * 2**30} free"
    )
    assert reason(tagged) == "no registered node can ever run it: n1: node lacks tags gpu:h100"
    assert reason(fine) is None
