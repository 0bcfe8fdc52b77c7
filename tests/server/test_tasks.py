"""Submitting, reading, listing, cancelling, retrying and deleting tasks; batches; waits."""

from __future__ import annotations

import threading

import pytest

from .flows import claim, finish, register, spec, submit, upload
from .harness import Server


def test_it_queues_a_task_whose_files_are_the_submitters_blobs(server: Server):
    alice = server.api("alice")
    reference = upload(alice, b"input\n")
    task = submit(alice, files={"in.txt": {"reference": reference}}, stdin="in.txt")
    assert task["state"] == "queued" and task["owner"] == "alice" and task["attempts"] == 0
    assert task["task"]["files"] == {"in.txt": {"reference": reference}}
    # The submission's answer is the task as read, but for the reason it skips working out.
    read = alice.get(f"tasks/{task['key']}/").json()
    assert task["reason"] is None and read["reason"] == "no node is registered"
    assert read == {**task, "reason": read["reason"]}


def test_it_reads_the_legacy_task_form(server: Server):
    legacy = {"image": "kolejka/busybox:latest", "exec": ["uname"], "memory": "64M", "cpus": "1"}
    answer = server.api("alice").post("tasks/", json={"task": legacy})
    assert answer.status_code == 201, answer.text
    assert answer.json()["task"]["limits"] == {"cpus": 1, "memory": "64M"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": spec(limits={"memory": "64X"})}, "task.limits.memory"),
        ({"task": spec(limits={"memroy": "1G"})}, "task.limits.memroy"),
        ({"task": spec(limits={"pids": 0})}, "task.limits.pids"),
        ({"task": spec(colour="red")}, "task.colour"),
        ({"task": spec(args="true")}, "task.args"),
        ({"task": spec(files={"../x": {"reference": "0" * 64}})}, "task.files.../x"),
        ({"task": spec(files={"/etc/passwd": {"reference": "0" * 64}})}, "task.files./etc/passwd"),
        ({"task": spec(files={"in": {"path": "in"}})}, "task.files.in"),
        ({"task": spec(files={"in": {"reference": "../../etc"}})}, "task.files.in.reference"),
        ({"task": spec(files={"in": {"reference": "a" * 64}})}, "task.files.in.reference"),
        ({"task": spec(), "priority": "high"}, "priority"),
        ({"task": spec(), "colour": "red"}, "colour"),
        ({"priority": 0}, "task"),
        ({"task": "kolejka_task.json"}, "task"),
        ({"task": spec(environment={"N": 5})}, "task.environment.N"),
    ],
)
def test_it_refuses_an_invalid_task_naming_the_field(shared: Server, body, field):
    alice = shared.api("alice")
    answer = alice.post("tasks/", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid"
    assert answer.json()["field"] == field
    assert alice.get("tasks/").json()["results"] == []


def test_it_refuses_a_file_of_another_users_without_saying_it_exists(server: Server):
    alice, bob = server.api("alice"), server.api("bob")
    secret = upload(bob, b"bob's secret\n")
    answer = alice.post("tasks/", json={"task": spec(files={"in": {"reference": secret}})})
    unknown = alice.post("tasks/", json={"task": spec(files={"in": {"reference": "b" * 64}})})
    assert answer.status_code == unknown.status_code == 400
    assert answer.json()["detail"].replace(secret, "b" * 64) == unknown.json()["detail"]


def test_it_lets_only_admins_raise_the_priority(server: Server):
    answer = server.api("alice").post("tasks/", json={"task": spec(), "priority": 1})
    assert answer.status_code == 403 and answer.json()["field"] == "priority"
    assert server.api("ada").post("tasks/", json={"task": spec(), "priority": 1}).status_code == 201


def test_it_shows_other_users_tasks_as_missing_and_inspectors_everything(server: Server):
    alice, bob, ivan = server.api("alice"), server.api("bob"), server.api("ivan")
    task = submit(alice)
    for path in ("", "cancel/", "retry/", "result/"):
        method = bob.post if path in ("cancel/", "retry/") else bob.get
        answer = method(f"tasks/{task['key']}/{path}")
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", path
    assert bob.delete(f"tasks/{task['key']}/").status_code == 404
    assert bob.get("tasks/").json()["results"] == []
    assert ivan.get(f"tasks/{task['key']}/").json()["key"] == task["key"]
    assert [t["key"] for t in ivan.get("tasks/?owner=alice").json()["results"]] == [task["key"]]
    assert ivan.post("tasks/", json={"task": spec()}).status_code == 403


def test_it_lists_own_tasks_newest_first_by_state_and_page(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    keys = [submit(alice)["key"] for _ in range(5)]
    register(fred, "n1")
    claim(fred, "n1")
    listed = alice.get("tasks/?state=queued").json()
    assert [t["key"] for t in listed["results"]] == keys[:0:-1]
    first = alice.get("tasks/?limit=2").json()
    second = alice.get(f"tasks/?limit=2&cursor={first['next']}").json()
    assert [t["key"] for t in first["results"] + second["results"]] == keys[::-1][:4]
    assert alice.get("tasks/?state=sleeping").json()["field"] == "state"
    assert alice.get("tasks/?cursor=x").json()["field"] == "cursor"
    assert alice.get("tasks/?limit=0").json()["field"] == "limit"


def test_it_queues_a_batch_all_or_nothing(server: Server):
    alice = server.api("alice")
    bad = {"tasks": [{"task": spec()}, {"task": spec(limits={"memory": "lots"})}]}
    refused = alice.post("tasks/batch/", json=bad)
    assert refused.status_code == 400 and refused.json()["field"] == "tasks[1].task.limits.memory"
    assert alice.get("tasks/").json()["results"] == []
    made = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 3})
    assert made.status_code == 201
    batch = made.json()["batch"]
    assert {t["batch"] for t in made.json()["tasks"]} == {batch}
    progress = alice.get(f"batches/{batch}/").json()
    assert progress["total"] == 3 and progress["states"]["queued"] == 3
    assert server.api("bob").get(f"batches/{batch}/").status_code == 404
    assert len(alice.get(f"tasks/?batch={batch}").json()["results"]) == 3
    too_many = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 1001})
    assert too_many.status_code == 400 and too_many.json()["field"] == "tasks"


def test_it_cancels_retries_and_deletes(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice)
    assert alice.post(f"tasks/{task['key']}/cancel/").json()["state"] == "cancelled"
    assert alice.post(f"tasks/{task['key']}/retry/").json()["state"] == "queued"
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    finish(fred, lease)
    done = alice.post(f"tasks/{task['key']}/cancel/")
    assert done.status_code == 409 and done.json()["code"] == "conflict"
    assert alice.post(f"tasks/{task['key']}/retry/").status_code == 409
    assert alice.delete(f"tasks/{task['key']}/").status_code == 204
    assert alice.get(f"tasks/{task['key']}/").status_code == 404


def test_it_rejudges_a_finished_task_in_place_keeping_its_earlier_results(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice)
    assert alice.post(f"tasks/{task['key']}/rejudge/").status_code == 409  # not finished
    register(fred, "n1")
    finish(fred, claim(fred, "n1")["lease"]["id"], status="OK")
    rejudged = alice.post(f"tasks/{task['key']}/rejudge/").json()
    assert rejudged["state"] == "queued" and rejudged["key"] == task["key"]
    finish(fred, claim(fred, "n1")["lease"]["id"], status="RUNTIME_ERROR", result=1)
    shown = alice.get(f"tasks/{task['key']}/").json()
    assert shown["result"]["status"] == "RUNTIME_ERROR"
    assert [run["result"]["status"] for run in shown["history"]] == ["OK"]
    assert server.api("ivan").post(f"tasks/{task['key']}/rejudge/").status_code == 403


def test_it_cancels_a_running_task_when_it_is_deleted(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    assert alice.delete(f"tasks/{task['key']}/").status_code == 204
    assert fred.post(f"leases/{lease}/heartbeat/", json={}).json()["cancel"] is True


def test_it_says_a_result_is_not_there_yet(server: Server):
    alice = server.api("alice")
    task = submit(alice)
    answer = alice.get(f"tasks/{task['key']}/result/")
    assert answer.status_code == 409
    assert answer.json()["code"] == "not_finished" and answer.json()["state"] == "queued"


def test_it_answers_waiting_clients_when_the_task_moves_on(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice)
    register(fred, "n1")
    seen: dict[str, object] = {}

    def wait_for_state() -> None:
        seen["state"] = alice.get(f"tasks/{task['key']}/?wait=50&state=queued").json()["state"]

    def wait_for_result() -> None:
        seen["result"] = server.api("alice").get(f"tasks/{task['key']}/result/?wait=50").json()

    waiters = [threading.Thread(target=wait_for_state), threading.Thread(target=wait_for_result)]
    for waiter in waiters:
        waiter.start()
    lease = claim(fred, "n1")["lease"]["id"]
    finish(fred, lease, id="answer")
    for waiter in waiters:
        waiter.join(timeout=60)
    assert seen["state"] in ("assigned", "done")
    assert seen["result"]["id"] == "answer"  # type: ignore[index]


def test_it_counts_the_queue_for_clients_and_the_grid_for_others(server: Server):
    alice, bob, fred, ivan = (server.api(name) for name in ("alice", "bob", "fred", "ivan"))
    submit(alice)
    submit(bob)
    register(fred, "n1")
    claim(fred, "n1")
    mine = alice.get("queue/stats/").json()
    assert sum(mine["states"].values()) == 1 and mine["nodes"] == {}
    grid = ivan.get("queue/stats/").json()
    assert grid["states"]["queued"] + grid["states"]["assigned"] == 2
    assert grid["nodes"]["n1"]["running"] == 1 and grid["oldest_queued"] is not None
