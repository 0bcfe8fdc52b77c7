"""Retry policies through the API: a result the policy names runs the task again in place (the
attempt kept in its history, the backoff in its `not_before`), up to `max`, apart from the
platform's attempts; ``grow`` raises the memory the next attempt gets and asks of a node; bad
policies are refused at submission, naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from .flows import claim, eventually, finish, register, submit
from .harness import Server

EXIT_75 = {"on_exit": [75], "max": 2}


def attempt(alice, fred, key: str, node: str = "n1", **result) -> dict:
    """Claim `key` on `node` once its backoff allows, report `result`, return the task."""
    answer = eventually(lambda: (lambda c: c if c["task"] else None)(claim(fred, node)))
    assert answer["task"]["key"] == key
    finish(fred, answer["lease"]["id"], **result)
    return dict(alice.get(f"tasks/{key}/").json())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_it_runs_a_task_again_on_a_named_exit_code_and_keeps_the_attempt(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    key = submit(alice, retry=EXIT_75)["key"]
    again = attempt(alice, fred, key, result=75, status="RUNTIME_ERROR", stdout="out.txt")
    assert (again["state"], again["result"], again["attempts"]) == ("queued", None, 1)
    [earlier] = again["history"]
    assert earlier["retry"] == "exit code 75"
    assert (earlier["result"]["result"], earlier["result"]["status"]) == (75, "RUNTIME_ERROR")
    assert "exit code 75: the retry policy runs it again (1 of 2)" in again["reason"]
    done = attempt(alice, fred, key)
    assert (done["state"], done["attempts"], done["result"]["status"]) == ("done", 2, "OK")
    assert [
        (a["attempt"], a["result"], a["status"], a["retry"]) for a in done["result"]["attempts"]
    ] == [
        (1, 75, "RUNTIME_ERROR", "exit code 75"),
        (2, 0, "OK", None),
    ]


def test_it_stops_at_max_with_the_final_verdict(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    key = submit(alice, retry={"on_verdict": ["TIME_LIMIT"], "max": 2})["key"]
    for _ in range(2):
        assert attempt(alice, fred, key, result=137, status="TIME_LIMIT")["state"] == "queued"
    final = attempt(alice, fred, key, result=137, status="TIME_LIMIT")
    assert (final["state"], final["result"]["status"], final["attempts"]) == (
        "done",
        "TIME_LIMIT",
        3,
    )
    assert [a["retry"] for a in final["result"]["attempts"]] == [
        "verdict TIME_LIMIT",
        "verdict TIME_LIMIT",
        None,
    ]
    assert len(final["history"]) == 2
    assert claim(fred, "n1")["task"] is None


def test_it_leaves_a_result_no_rule_names_final(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    key = submit(alice, retry=EXIT_75)["key"]
    final = attempt(alice, fred, key, result=1, status="RUNTIME_ERROR")
    assert (final["state"], final["history"]) == ("done", [])
    assert final["result"]["attempts"][0]["retry"] is None


def test_it_spaces_re_runs_by_the_backoff(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    policy = {"on_exit": [75], "max": 3, "backoff": {"initial": "1s", "factor": 60}}
    key = submit(alice, retry=policy)["key"]
    first = attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")
    assert at(first["not_before"]) - at(first["history"][-1]["finished"]) == timedelta(seconds=1)
    second = attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")
    wait = at(second["not_before"]) - at(second["history"][-1]["finished"])
    assert wait == timedelta(minutes=1)
    assert claim(fred, "n1")["task"] is None  # a minute ahead: no node takes it yet
    why = alice.get(f"tasks/{key}/why/").json()
    assert "retry spacing" in " ".join(why["nodes"][0]["why"])


def test_it_keeps_policy_re_runs_and_platform_retries_apart(quick_retries: Server):
    alice, fred = quick_retries.api("alice"), quick_retries.api("fred")
    register(fred, "n1")
    key = submit(alice, retry=EXIT_75)["key"]
    first = attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")
    assert (first["attempts"], first["max_attempts"]) == (1, 4)  # the re-run: one more attempt
    lease = eventually(lambda: claim(fred, "n1")["lease"])
    fred.post(f"leases/{lease['id']}/fail/", json={"error": "docker is down"})
    assert alice.get(f"tasks/{key}/").json()["state"] == "queued"  # the platform's retry
    second = attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")
    assert second["state"] == "queued"  # the policy's second re-run: the failure did not count
    final = attempt(alice, fred, key)
    assert (final["state"], final["attempts"], final["max_attempts"]) == ("done", 4, 5)
    assert [a["attempt"] for a in final["result"]["attempts"]] == [1, 3, 4]


def test_it_counts_re_runs_afresh_after_a_rejudge(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    key = submit(alice, retry={"on_exit": [75], "max": 1})["key"]
    attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")
    assert attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")["state"] == "done"
    assert alice.post(f"tasks/{key}/rejudge/").status_code == 200
    again = attempt(alice, fred, key, result=75, status="RUNTIME_ERROR")
    assert again["state"] == "queued" and again["history"][-1]["retry"] == "exit code 75"
    final = attempt(alice, fred, key)
    assert [a["attempt"] for a in final["result"]["attempts"]] == [3, 4]


def test_it_grows_the_memory_of_the_next_attempt_and_places_it_by_it(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "small", capacity={"cpus": 4, "memory": "100M", "workspace": "1G"})
    register(fred, "big", capacity={"cpus": 4, "memory": "8G", "workspace": "1G"})
    policy = {"on_memory_limit": "grow", "memory_max": "200M", "max": 5}
    key = submit(alice, limits={"memory": "64M"}, retry=policy)["key"]

    def out_of_memory(node: str, limit: str, peak: str) -> dict:
        return attempt(
            alice,
            fred,
            key,
            node,
            result=137,
            status="MEMORY_LIMIT",
            limits={"memory": limit},
            stats={"memory": {"max_usage": peak}},
        )

    grown = out_of_memory("small", "64M", "64M")
    assert grown["task"]["limits"]["memory"] == "128M"
    assert grown["history"][-1]["retry"] == "memory limit 64M hit; grown to 128M"
    assert claim(fred, "small")["task"] is None  # 128M does not fit 100M any more
    assert out_of_memory("big", "128M", "128M")["task"]["limits"]["memory"] == "200M"
    final = out_of_memory("big", "200M", "200M")  # at the cap: final
    assert (final["state"], final["result"]["status"]) == ("done", "MEMORY_LIMIT")
    assert [(a["memory"], a["memory_peak"]) for a in final["result"]["attempts"]] == [
        ("64M", "64M"),
        ("128M", "128M"),
        ("200M", "200M"),
    ]


BAD = [
    ({"on_verdict": ["RTE"], "max": 2}, "task.retry.on_verdict[0]"),
    ({"on_exit": [75], "max": -1}, "task.retry.max"),
    ({"on_exit": [75]}, "task.retry.max"),
    ({"on_exit": [75], "max": 2, "backof": "1s"}, "task.retry.backof"),
    ({"on_memory_limit": "grow", "memory_max": "32M", "max": 2}, "task.retry.memory_max"),
    ({"on_memory_limit": "grow", "memory_max": "16G", "max": 2}, "task.retry.memory_max"),
    (
        {"on_exit": [75], "max": 2, "backoff": {"initial": "1s", "factor": 0}},
        "task.retry.backoff.factor",
    ),
]


@pytest.mark.parametrize(("policy", "field"), BAD)
def test_it_refuses_a_bad_policy_naming_the_field(shared: Server, policy, field):
    bob, gina = shared.api("bob"), shared.api("gina")
    register(gina, "g1")  # 8G: the largest node, so a cap of 16G fits none
    answer = bob.post("tasks/", json={"task": {**spec_of(policy), "limits": {"memory": "64M"}}})
    assert answer.status_code == 400, answer.text
    assert (answer.json()["code"], answer.json()["field"]) == ("invalid", field)
    batch = bob.post(
        "tasks/batch/", json={"tasks": [{"task": spec_of(None)}, {"task": spec_of(policy)}]}
    )
    assert batch.status_code == 400 and batch.json()["field"].startswith("tasks[1].task.retry")
    assert bob.get("tasks/").json()["results"] == []


def spec_of(policy: dict | None) -> dict:
    base = {"image": "kolejka/busybox:latest", "args": ["true"], "limits": {"memory": "64M"}}
    return {**base, "retry": policy} if policy is not None else base


def test_it_finds_a_grown_task_by_its_idempotency_key(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1")
    task = spec_of({"on_memory_limit": "grow", "max": 1})
    headers = {"Idempotency-Key": "grown-1"}
    key = alice.post("tasks/", json={"task": task}, headers=headers).json()["key"]
    grown = attempt(alice, fred, key, result=137, status="MEMORY_LIMIT", limits={"memory": "64M"})
    assert grown["task"]["limits"]["memory"] == "128M"
    again = alice.post("tasks/", json={"task": task}, headers=headers)  # its answer was lost
    assert (again.status_code, again.json()["key"]) == (200, key)
    other = {**task, "args": ["false"]}
    assert alice.post("tasks/", json={"task": other}, headers=headers).status_code == 409
