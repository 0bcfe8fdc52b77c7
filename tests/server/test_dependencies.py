"""Dependencies (``after``): a task waits, unseen by claims, until what it names ends as it asks;
one whose dependency can no longer be met is cancelled with the reason, down the chain."""

from __future__ import annotations

import threading
from typing import Any

from .flows import claim, finish, register, spec
from .harness import Api, Server


def submitted(api: Api, *after: Any, **fields: Any) -> dict[str, Any]:
    answer = api.post("tasks/", json={"task": spec(**fields), "after": list(after)})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def state(api: Api, key: str) -> dict[str, Any]:
    return dict(api.get(f"tasks/{key}/").json())


def run(fred: Api, node: str, status: str = "OK") -> str:
    """Claim the one task a node may take now and end it with `status`; its key."""
    answer = claim(fred, node, wait=0)
    assert answer["task"] is not None, "no task to claim"
    finish(fred, answer["lease"]["id"], status=status)
    return str(answer["task"]["key"])


def test_it_queues_a_task_only_once_its_dependency_ended_ok(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    first = submitted(alice)
    second = submitted(alice, first["key"])
    assert second["state"] == "waiting"
    assert second["after"] == [{"key": first["key"], "when": "ok"}]
    assert state(alice, second["key"])["reason"] == f"waits for its dependencies: ok:{first['key']}"
    why = alice.get(f"tasks/{second['key']}/why/").json()
    assert why["reason"] == f"waits for its dependencies: ok:{first['key']}"
    assert run(fred, "n1") == first["key"]
    assert state(alice, second["key"])["state"] == "queued"
    assert run(fred, "n1") == second["key"]


def test_it_cancels_ok_dependents_of_a_failed_task_down_the_chain_and_runs_the_others(
    grid: Server,
):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    root = submitted(alice)["key"]
    ok = submitted(alice, f"ok:{root}")["key"]
    ok_of_ok = submitted(alice, {"key": ok, "when": "ok"})["key"]
    notok_of_ok = submitted(alice, f"notok:{ok}")["key"]
    notok = submitted(alice, f"notok:{root}")["key"]
    any_ = submitted(alice, f"any:{root}")["key"]
    assert run(fred, "n1", status="RUNTIME_ERROR") == root
    cancelled = state(alice, ok)
    assert cancelled["state"] == "cancelled"
    assert cancelled["error"] == (
        f"dependency {root} ended done (RUNTIME_ERROR); this task waited for it to end ok"
    )
    assert state(alice, ok_of_ok)["state"] == "cancelled"
    assert state(alice, ok_of_ok)["error"] == (
        f"dependency {ok} ended cancelled; this task waited for it to end ok"
    )
    for key in (notok_of_ok, notok, any_):
        assert state(alice, key)["state"] == "queued", key


def test_it_settles_a_dependency_that_ended_before_the_submission_at_once(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    root = submitted(alice)["key"]
    run(fred, "n1", status="OK")
    assert submitted(alice, root)["state"] == "queued"
    refused = submitted(alice, f"notok:{root}")
    assert refused["state"] == "cancelled"
    assert (
        refused["error"]
        == f"dependency {root} ended done (OK); this task waited for it to end notok"
    )


def test_it_never_lets_a_claim_see_a_waiting_task(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    root = submitted(alice)["key"]
    rows = [{"task": spec(), "after": [root]} for _ in range(50)]
    batch = alice.post("tasks/batch/", json={"tasks": rows})
    assert batch.status_code == 201, batch.text
    assert {task["state"] for task in batch.json()["tasks"]} == {"waiting"}
    assert alice.get("queue/stats/").json()["states"]["waiting"] == 50
    taken = claim(fred, "n1", wait=0)
    assert taken["task"]["key"] == root
    assert claim(fred, "n1", wait=0)["task"] is None
    assert alice.get("queue/stats/").json()["states"]["queued"] == 0
    finish(fred, taken["lease"]["id"])
    assert alice.get("queue/stats/").json()["states"]["queued"] == 50


def test_it_cancels_waiting_dependents_when_their_dependency_is_cancelled(grid: Server):
    alice = grid.api("alice")
    root = submitted(alice)["key"]
    ok, any_ = submitted(alice, root)["key"], submitted(alice, f"any:{root}")["key"]
    assert alice.post(f"tasks/{root}/cancel/").status_code == 200
    assert state(alice, ok)["state"] == "cancelled"
    assert state(alice, any_)["state"] == "queued"
    # Cancelling a waiting task cancels what waits on it in turn.
    middle = submitted(alice)["key"]
    waiting = submitted(alice, middle)["key"]
    last = submitted(alice, waiting)["key"]
    assert alice.post(f"tasks/{waiting}/cancel/").status_code == 200
    assert state(alice, last)["state"] == "cancelled"
    assert state(alice, middle)["state"] == "queued"


def test_it_refuses_a_cycle_within_a_batch_and_creates_nothing(grid: Server):
    alice = grid.api("alice")
    rows = [
        {"task": spec(), "after": ["#1"]},
        {"task": spec(), "after": ["#2"]},
        {"task": spec(), "after": ["any:#0"]},
    ]
    refused = alice.post("tasks/batch/", json={"tasks": rows})
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] in {f"tasks[{index}].after" for index in range(3)}
    assert "cycle" in refused.json()["detail"]
    itself = alice.post("tasks/batch/", json={"tasks": [{"task": spec(), "after": ["#0"]}]})
    assert itself.status_code == 400 and itself.json()["field"] == "tasks[0].after"
    assert alice.get("tasks/").json()["results"] == []


def test_it_refuses_unknown_keys_and_other_users_tasks_naming_the_field(grid: Server):
    alice, bob = grid.api("alice"), grid.api("bob")
    bobs = submitted(bob)["key"]
    for after, field in (
        ([bobs], "after[0].key"),
        (["ok:t-nosuchtask"], "after[0].key"),
        (["#0"], "after[0].position"),
        (["later:t-x"], "after[0].when"),
        ([{"key": "t-x", "position": 1}], "after[0]"),
    ):
        answer = alice.post("tasks/", json={"task": spec(), "after": after})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field, answer.text
    assert alice.get("tasks/").json()["results"] == []


def test_it_runs_a_batch_after_a_batch_and_by_positions_within_one(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    first = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 3}).json()["batch"]
    rows = [
        {"task": spec(), "after": [{"key": first, "when": "any"}]},
        {"task": spec(), "after": ["#0"]},
    ]
    second = alice.post("tasks/batch/", json={"tasks": rows})
    assert second.status_code == 201, second.text
    keys = [task["key"] for task in second.json()["tasks"]]
    assert state(alice, keys[0])["reason"] == f"waits for its dependencies: any:batch {first}"
    ran = [run(fred, "n1", status=status) for status in ("OK", "TIME_LIMIT")]
    assert keys[0] not in ran and state(alice, keys[0])["state"] == "waiting"
    run(fred, "n1")
    assert run(fred, "n1") == keys[0]
    assert run(fred, "n1") == keys[1]
    # ok on a batch: every one of its tasks ended ok, else its dependents are cancelled.
    late = submitted(alice, first)
    assert late["state"] == "cancelled"
    assert late["error"] == (
        f"dependency batch {first} ended with 1 tasks not ok; this task waited for it to end ok"
    )


def test_it_refuses_to_wait_for_an_open_batch_and_cancels_a_staged_task_at_the_seal(
    grid: Server,
):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    batch = alice.post("batches/", json={}).json()["batch"]
    refused = alice.post("tasks/", json={"task": spec(), "after": [batch]})
    assert refused.status_code == 400 and refused.json()["field"] == "after[0].key"
    root = submitted(alice)["key"]
    rows = [{"task": spec(), "after": [root]}, {"task": spec(), "after": ["notok:#0"]}]
    page = alice.post(f"batches/{batch}/tasks/", json={"start": 0, "tasks": rows})
    assert page.status_code == 201, page.text
    run(
        fred, "n1", status="MEMORY_LIMIT"
    )  # the staged task's dependency fails while its batch is open
    assert claim(fred, "n1", wait=0)["task"] is None
    sealed = alice.post(f"batches/{batch}/seal/").json()
    assert sealed["states"]["cancelled"] == 1 and sealed["states"]["queued"] == 1


def race(alice: Api, fred: Api, dependent_first: bool) -> str:
    """A dependency ending while its dependent is submitted, from a barrier; the dependent."""
    root = submitted(alice)["key"]
    lease = claim(fred, "n1", wait=0)["lease"]["id"]
    barrier = threading.Barrier(2)
    dependent: list[str] = []

    def end() -> None:
        barrier.wait()
        finish(fred, lease)

    def depend() -> None:
        barrier.wait()
        # It needs a tag no node has: the next round's claim takes the next root.
        dependent.append(submitted(alice, f"any:{root}", requires=["gpu-x"])["key"])

    threads = [threading.Thread(target=depend), threading.Thread(target=end)]
    for thread in threads if dependent_first else reversed(threads):
        thread.start()
    for thread in threads:
        thread.join()
    return dependent[0]


def test_it_never_leaves_a_dependent_waiting_when_its_dependency_ends_during_its_submission(
    grid: Server,
):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1", slots=100)
    dependents = [race(alice, fred, dependent_first=index % 2 == 0) for index in range(12)]
    assert {state(alice, key)["state"] for key in dependents} == {"queued"}


def test_it_settles_every_one_of_many_dependents_when_their_dependency_ends(grid: Server):
    alice = grid.api("alice")
    root = submitted(alice, requires=["gpu-x"])["key"]
    for when in ("ok", "any"):
        rows = [{"task": spec(requires=["gpu-x"]), "after": [f"{when}:{root}"]}] * 700
        assert alice.post("tasks/batch/", json={"tasks": rows}).status_code == 201
    assert alice.post(f"tasks/{root}/cancel/").status_code == 200
    states = alice.get("queue/stats/").json()["states"]
    assert (states["waiting"], states["queued"], states["cancelled"]) == (0, 700, 701)
