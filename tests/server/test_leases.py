"""Leases: heartbeats, expiry and requeue, attempts, stale and repeated results, cancel,
failure and release."""

from __future__ import annotations

from .flows import claim, eventually, finish, register, result, submit
from .harness import Server


def test_it_moves_a_task_to_running_on_the_first_running_heartbeat(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]
    assert alice.get(f"tasks/{task['key']}/").json()["state"] == "assigned"
    beat = fred.post(f"leases/{lease['id']}/heartbeat/", json={"running": True})
    assert beat.status_code == 200 and beat.json()["cancel"] is False
    assert beat.json()["expires"] >= lease["expires"]
    shown = alice.get(f"tasks/{task['key']}/").json()
    assert shown["state"] == "running" and shown["started"] is not None and shown["node"] == "n1"


def test_it_requeues_a_task_whose_lease_expired_and_counts_the_attempt(short_leases: Server):
    alice, fred = short_leases.api("alice"), short_leases.api("fred")
    task = submit(alice)
    register(fred, "n1")
    first = claim(fred, "n1")
    assert first["lease"]["attempt"] == 1
    # The node dies: no heartbeats. The next claim (any node) reaps the lease and gets the task.
    second = eventually(lambda: claim(fred, "n1")["task"], what="the task to come back")
    assert second["key"] == task["key"] and second["attempts"] == 2
    lost = fred.post(f"leases/{first['lease']['id']}/heartbeat/", json={})
    assert lost.status_code == 409 and lost.json()["code"] == "lease_lost"


def test_it_fails_a_task_out_of_attempts_with_a_system_error(short_leases: Server):
    alice, fred = short_leases.api("alice"), short_leases.api("fred")
    task = submit(alice)
    register(fred, "n1")
    claim(fred, "n1")
    eventually(lambda: claim(fred, "n1")["task"], what="the second attempt")

    def failed() -> dict | None:
        short_leases.manage("reap")
        shown = alice.get(f"tasks/{task['key']}/").json()
        return shown if shown["state"] == "failed" else None

    shown = eventually(failed, what="the task to fail")
    assert shown["attempts"] == 2
    assert "lease on node n1 expired" in shown["error"]


def test_it_refuses_a_result_from_a_stale_lease(short_leases: Server):
    alice, fred, gina = (short_leases.api(name) for name in ("alice", "fred", "gina"))
    task = submit(alice)
    register(fred, "slow")
    register(gina, "fast")
    stale = claim(fred, "slow")["lease"]["id"]
    fresh = eventually(lambda: claim(gina, "fast")["lease"], what="the task to be taken over")
    refused = fred.post(f"leases/{stale}/result/", json=result())
    assert refused.status_code == 409 and refused.json()["code"] == "lease_lost"
    assert finish(gina, fresh["id"])["key"] == task["key"]


def test_it_accepts_a_result_once(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    done = finish(fred, lease, id="mine")
    assert done["state"] == "done" and done["result"]["id"] == "mine"
    again = fred.post(f"leases/{lease}/result/", json=result())
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert alice.get(f"tasks/{task['key']}/result/").json()["id"] == "mine"


def test_it_tells_the_foreman_of_a_cancel_and_refuses_its_result(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    fred.post(f"leases/{lease}/heartbeat/", json={"running": True})
    cancelled = alice.post(f"tasks/{task['key']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    beat = fred.post(f"leases/{lease}/heartbeat/", json={"running": True})
    assert beat.status_code == 200 and beat.json()["cancel"] is True
    late = fred.post(f"leases/{lease}/result/", json=result())
    assert late.status_code == 409 and late.json()["code"] == "lease_lost"
    assert alice.get(f"tasks/{task['key']}/").json()["state"] == "cancelled"
    assert fred.get("nodes/").json()["results"][0]["running"] == []


def test_it_requeues_a_failed_attempt_while_attempts_remain_then_fails_it(
    quick_retries: Server,
):
    alice, fred = quick_retries.api("alice"), quick_retries.api("fred")
    task = submit(alice)
    register(fred, "n1")
    for attempt in range(1, 4):
        lease = claim(fred, "n1")["lease"]
        assert lease["attempt"] == attempt
        answer = fred.post(f"leases/{lease['id']}/fail/", json={"error": "docker is down"})
        assert answer.status_code == 200
    shown = alice.get(f"tasks/{task['key']}/").json()
    assert shown["state"] == "failed" and shown["error"] == "docker is down"
    assert shown["attempts"] == 3


def test_it_fails_at_once_when_the_foreman_says_not_to_retry(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    answer = fred.post(f"leases/{lease}/fail/", json={"error": "no such image", "retry": False})
    assert answer.json()["state"] == "failed"
    retried = alice.post(f"tasks/{task['key']}/retry/").json()
    # Run again in place: the failed attempt is counted and kept, as many are ahead as at first.
    assert retried["state"] == "queued" and retried["attempts"] == 1
    assert retried["max_attempts"] == 1 + task["max_attempts"]
    assert retried["history"][0]["error"] == "no such image"


def test_it_takes_a_released_task_back_without_counting_the_attempt(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    released = fred.post(f"leases/{lease}/release/")
    assert released.json()["state"] == "queued" and released.json()["attempts"] == 0
    again = claim(fred, "n1")
    assert again["task"]["key"] == task["key"] and again["lease"]["attempt"] == 1


def test_it_hides_a_lease_from_other_foremen(grid: Server):
    alice, fred, gina = grid.api("alice"), grid.api("fred"), grid.api("gina")
    submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    for path in ("heartbeat", "result", "fail", "release"):
        answer = gina.post(f"leases/{lease}/{path}/", json={})
        assert answer.status_code == 404, path
    assert gina.post("leases/not-a-lease/heartbeat/", json={}).status_code == 404
