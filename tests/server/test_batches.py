"""Batches of any size: opened, filled page by page, sealed at once; progress by state and
verdict; re-runs in place; cancel; purge; bundles of small blobs."""

from __future__ import annotations

import io
import os
import tarfile
import threading

from .flows import claim, finish, register, spec, upload
from .harness import Api, Server


def opened(api: Api) -> str:
    answer = api.post("batches/", json={})
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "open" and answer.json()["total"] == 0
    return str(answer.json()["batch"])


def page(api: Api, batch: str, start: int, count: int, **fields: object):
    tasks = [{"task": spec(id=f"row-{start + n}", **fields)} for n in range(count)]
    return api.post(f"batches/{batch}/tasks/", json={"start": start, "tasks": tasks})


def test_it_runs_nothing_of_a_batch_until_it_is_sealed_then_queues_all_of_it(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    batch = opened(alice)
    for start in range(0, 2500, 1000):
        answer = page(alice, batch, start, min(1000, 2500 - start))
        assert answer.status_code == 201, answer.text
    assert alice.get(f"batches/{batch}/").json()["total"] == 2500
    assert claim(fred, "n1", wait=0)["task"] is None
    assert alice.get(f"tasks/?batch={batch}").json()["results"] == []
    assert alice.get("queue/stats/").json()["states"]["queued"] == 0
    sealed = alice.post(f"batches/{batch}/seal/")
    assert sealed.status_code == 200 and sealed.json()["state"] == "sealed"
    assert sealed.json()["states"]["queued"] == 2500
    assert alice.post(f"batches/{batch}/seal/").status_code == 200  # idempotent
    got = claim(fred, "n1", wait=0)["task"]
    assert got["batch"] == batch and got["position"] == 0 and got["task"]["id"] == "row-0"
    late = page(alice, batch, 2500, 1)
    assert late.status_code == 409 and late.json()["code"] == "conflict"


def test_it_refuses_a_page_that_does_not_start_where_the_batch_ends(server: Server):
    alice = server.api("alice")
    batch = opened(alice)
    assert page(alice, batch, 0, 3).status_code == 201
    again = page(alice, batch, 0, 3)  # the same page sent twice: its answer was lost
    assert again.status_code == 409 and again.json()["size"] == 3, again.text
    assert again.json()["field"] == "start"
    assert alice.get(f"batches/{batch}/").json()["total"] == 3
    assert page(alice, batch, 3, 1).status_code == 201


def test_it_takes_one_of_two_racing_pages_for_the_same_place(grid: Server):
    alice = grid.api("alice")
    batch = opened(alice)
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def send() -> None:
        barrier.wait()
        codes.append(page(alice, batch, 0, 50).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201, 409]
    assert alice.get(f"batches/{batch}/").json()["total"] == 50


def test_it_refuses_bad_pages_naming_the_field(shared: Server):
    alice = shared.api("alice")
    batch = opened(alice)
    bad = page(alice, batch, 0, 2, limits={"memory": "64X"})
    assert bad.status_code == 400 and bad.json()["field"] == "tasks[0].task.limits.memory"
    too_many = page(alice, batch, 0, 1001)
    assert too_many.status_code == 400 and too_many.json()["field"] == "tasks"
    missing = page(alice, batch, 0, 1, files={"in": {"reference": "a" * 64}})
    assert missing.status_code == 400
    assert alice.get(f"batches/{batch}/").json()["total"] == 0
    empty = alice.post(f"batches/{batch}/seal/")
    assert empty.status_code == 409
    assert shared.api("bob").post(f"batches/{batch}/seal/").status_code == 404
    assert shared.api("ivan").post(f"batches/{batch}/seal/").status_code == 403


def test_it_counts_a_batch_by_state_and_verdict_and_reruns_only_the_failed(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    made = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 4}).json()
    batch = made["batch"]
    verdicts = ["OK", "RUNTIME_ERROR", "OK", "TIME_LIMIT"]
    keys = []
    for verdict in verdicts:
        got = claim(fred, "n1", wait=0)
        keys.append(got["task"]["key"])
        finish(fred, got["lease"]["id"], status=verdict, result=0 if verdict == "OK" else 1)
    progress = alice.get(f"batches/{batch}/").json()
    assert progress["states"]["done"] == 4 and progress["total"] == 4
    assert progress["verdicts"] == {"OK": 2, "RUNTIME_ERROR": 1, "TIME_LIMIT": 1}
    assert progress["finished"] is not None and progress["sealed"] is not None

    rerun = alice.post(f"batches/{batch}/rerun/", json={"which": "failed"})
    assert rerun.status_code == 200 and rerun.json()["changed"] == 2, rerun.text
    states = {key: alice.get(f"tasks/{key}/").json() for key in keys}
    assert [states[key]["state"] for key in keys] == ["done", "queued", "done", "queued"]
    again = states[keys[1]]
    assert again["attempts"] == 1 and again["max_attempts"] > 1 and again["result"] is None
    assert again["history"][0]["result"]["status"] == "RUNTIME_ERROR"
    assert again["history"][0]["state"] == "done" and again["history"][0]["attempts"] == 1
    got = claim(fred, "n1", wait=0)
    assert got["task"]["key"] == keys[1] and got["lease"]["attempt"] == 2

    only = alice.post(f"batches/{batch}/rerun/", json={"which": "verdict", "verdicts": ["OK"]})
    assert only.json()["changed"] == 2
    bad = alice.post(f"batches/{batch}/rerun/", json={"which": "verdict"})
    assert bad.status_code == 400 and bad.json()["field"] == "verdicts"


def test_it_retries_a_done_task_that_failed_but_not_one_that_succeeded(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1")
    for verdict, expected in (("RUNTIME_ERROR", 200), ("OK", 409)):
        key = alice.post("tasks/", json={"task": spec()}).json()["key"]
        lease = claim(fred, "n1", wait=0)["lease"]["id"]
        finish(fred, lease, status=verdict)
        answer = alice.post(f"tasks/{key}/retry/")
        assert answer.status_code == expected, answer.text
    assert server.api("bob").post(f"tasks/{key}/retry/").status_code == 404


def test_it_cancels_a_batch_and_purges_it_leaving_its_blobs_collectable(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1")
    own = upload(alice, os.urandom(32))
    batch = opened(alice)
    assert page(alice, batch, 0, 3, files={"in": {"reference": own}}).status_code == 201
    alice.post(f"batches/{batch}/seal/")
    got = claim(fred, "n1", wait=0)
    cancelled = alice.post(f"batches/{batch}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["changed"] == 3
    beat = fred.post(f"leases/{got['lease']['id']}/heartbeat/", json={})
    assert beat.json()["cancel"] is True
    assert server.api("bob").delete(f"batches/{batch}/").status_code == 404
    assert alice.delete(f"batches/{batch}/").status_code == 204
    assert alice.get(f"batches/{batch}/").status_code == 404
    assert alice.get(f"tasks/?batch={batch}").json()["results"] == []
    assert alice.get(f"tasks/{got['task']['key']}/").status_code == 404
    server.manage("collectgarbage", "--grace", "0")
    assert alice.head(f"blobs/{own}/").status_code == 404
    assert not any((server.data / "blobs").rglob(own))


def test_it_purges_an_open_batch(server: Server):
    alice = server.api("alice")
    batch = opened(alice)
    assert page(alice, batch, 0, 2).status_code == 201
    assert alice.post(f"batches/{batch}/cancel/").status_code == 409
    assert alice.delete(f"batches/{batch}/").status_code == 204
    assert alice.get(f"batches/{batch}/").status_code == 404


def test_it_lists_ones_own_batches(server: Server):
    alice, bob = server.api("alice"), server.api("bob")
    mine = [opened(alice) for _ in range(3)]
    opened(bob)
    first = alice.get("batches/?limit=2").json()
    assert [item["batch"] for item in first["results"]] == mine[:0:-1]
    rest = alice.get(f"batches/?limit=2&cursor={first['next']}").json()
    assert [item["batch"] for item in rest["results"]] == mine[:1] and rest["next"] is None
    assert len(server.api("ivan").get("batches/").json()["results"]) == 4


def test_it_bundles_small_blobs_in_order_up_to_its_budget(server: Server):
    alice = server.api("alice")
    contents = [os.urandom(100) for _ in range(3)]
    references = [upload(alice, content) for content in contents]
    answer = alice.post("blobs/bundle/", json={"references": [*references, references[0]]})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(answer.content)) as tar:
        got = {member.name: tar.extractfile(member).read() for member in tar}  # type: ignore[union-attr]
    assert got == dict(zip(references, contents, strict=True))
    refused = server.api("bob").post("blobs/bundle/", json={"references": references})
    assert refused.status_code == 404 and refused.json()["field"] == "references[0]"
