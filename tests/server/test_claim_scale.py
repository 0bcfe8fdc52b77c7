"""Claims at scale: many tasks in one claim that fit the node together, the next tasks in the
answer to a result, and no head-of-line blocking by tasks this node cannot run."""

from __future__ import annotations

from typing import Any

from .flows import claim, register, result, spec, submit
from .harness import Api, Server


def submit_all(api: Api, tasks: list[dict[str, Any]]) -> list[str]:
    answer = api.post("tasks/batch/", json={"tasks": [{"task": task} for task in tasks]})
    assert answer.status_code == 201, answer.text
    return [task["key"] for task in answer.json()["tasks"]]


def keys(answer: dict[str, Any]) -> list[str]:
    return [one["task"]["key"] for one in answer["claimed"]]


def test_it_claims_as_many_tasks_as_fit_the_node_together(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    two, other_two, one = submit_all(
        alice, [spec(limits={"cpus": 2}), spec(limits={"cpus": 2}), spec(limits={"cpus": 1})]
    )
    register(fred, "n1", capacity={"cpus": 3, "memory": "8G"}, slots=8)
    got = claim(fred, "n1", max=8)
    # Not both tasks of 2 cpus on 3 free; the second is first in line and the node waits for it.
    assert keys(got) == [two]
    assert got["task"]["key"] == two and got["lease"]["id"] == got["claimed"][0]["lease"]["id"]
    register(fred, "n2", capacity={"cpus": 8, "memory": "8G"}, slots=2)
    assert keys(claim(fred, "n2", max=8)) == [other_two, one]


def test_it_shares_one_claim_of_several_tasks_between_owners(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    alices = submit_all(alice, [spec()] * 3)
    bobs = submit_all(bob, [spec()] * 3)
    register(fred, "n1", capacity={"cpus": 8, "memory": "8G"}, slots=4)
    # Fair share by running count at each pick: the owner with fewer running goes next.
    assert keys(claim(fred, "n1", max=4)) == [alices[0], bobs[0], alices[1], bobs[1]]
    assert claim(fred, "n1", max=4)["claimed"] == []  # its 4 slots are taken


def test_it_answers_a_result_with_the_next_tasks_when_asked(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    first, second, third = submit_all(alice, [spec(limits={"cpus": 2})] * 3)
    register(fred, "n1", capacity={"cpus": 2, "memory": "8G"}, slots=4)
    lease = claim(fred, "n1", max=4)["claimed"][0]["lease"]["id"]
    done = fred.post(f"leases/{lease}/result/?claim=4", json=result())
    assert done.status_code == 201, done.text
    assert done.json()["key"] == first and done.json()["state"] == "done"
    # What its end left free: one task of 2 cpus.
    assert [one["task"]["key"] for one in done.json()["claimed"]] == [second]
    lease = done.json()["claimed"][0]["lease"]["id"]
    plain = fred.post(f"leases/{lease}/result/", json=result())
    assert "claimed" not in plain.json()
    assert claim(fred, "n1")["task"]["key"] == third


def test_it_refuses_a_bad_count_naming_the_field_and_changes_nothing(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    task = submit(alice)
    register(fred, "n1")
    for body in ({"max": 0}, {"max": "2"}, {"max": 10**6}):
        answer = fred.post("nodes/n1/claim/", json=body)
        assert answer.status_code == 400 and answer.json()["field"] == "max", answer.text
    lease = claim(fred, "n1")["lease"]["id"]
    answer = fred.post(f"leases/{lease}/result/?claim=-1", json=result())
    assert answer.status_code == 400 and answer.json()["field"] == "claim", answer.text
    assert alice.get(f"tasks/{task['key']}/").json()["state"] == "assigned"


def test_it_runs_an_owners_tasks_behind_any_number_needing_what_no_node_has(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    for _ in range(2):
        submit_all(alice, [spec(requires=["fpga"])] * 150 + [spec(resources={"licence": 1})] * 50)
    runnable = submit_all(alice, [spec()] * 3)
    # A node with tags of its own: the tasks needing others pass every numeric filter.
    register(fred, "n1", capacity={"cpus": 4, "memory": "8G"}, tags=["gpu"], slots=8)
    assert keys(claim(fred, "n1", max=8)) == runnable


def test_it_never_hands_out_more_than_the_nodes_open_leases_leave_whatever_free_says(
    grid: Server,
):
    alice, fred = grid.api("alice"), grid.api("fred")
    first, second, third = submit_all(alice, [spec(limits={"cpus": 1})] * 3)
    capacity = {"cpus": 2, "memory": "8G"}
    register(fred, "n1", capacity=capacity, slots=4)
    # A result's answer took one task for the node...
    assert keys(claim(fred, "n1")) == [first]
    # ...while the foreman's waiting claim still offers the whole node, as it was before.
    assert keys(claim(fred, "n1", free=capacity, idle=True, max=4)) == [second]
    assert alice.get(f"tasks/{third}/").json()["state"] == "queued"
