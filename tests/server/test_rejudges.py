"""Rejudging many tasks at once (``POST tasks/rejudge/``): every finished task a filter names,
in place, earlier results kept in each one's history; an owner's own, an admin's anyone's."""

from __future__ import annotations

from .flows import claim, finish, register, spec
from .harness import Api, Server


def ended(api: Api, fred: Api, status: str, **fields: object) -> str:
    answer = api.post("tasks/", json={"task": spec(**fields)})
    assert answer.status_code == 201, answer.text
    taken = claim(fred, "n1", wait=0)
    assert taken["task"]["key"] == answer.json()["key"]
    finish(fred, taken["lease"]["id"], status=status)
    return str(answer.json()["key"])


def test_it_rejudges_the_finished_tasks_a_filter_names_keeping_their_results(server: Server):
    alice, bob, fred = server.api("alice"), server.api("bob"), server.api("fred")
    register(fred, "n1", tags=["fast"])
    ok = ended(alice, fred, "OK")
    wrong = ended(alice, fred, "RUNTIME_ERROR")
    wrong_fast = ended(alice, fred, "RUNTIME_ERROR", requires=["fast"])
    bobs = ended(bob, fred, "RUNTIME_ERROR")
    body = {"state": "done", "verdicts": ["RUNTIME_ERROR"]}
    answer = alice.post("tasks/rejudge/", json={**body, "tag": "fast"})
    assert answer.status_code == 200 and answer.json() == {"changed": 1}, answer.text
    shown = alice.get(f"tasks/{wrong_fast}/").json()
    assert shown["state"] == "queued"
    assert [run["result"]["status"] for run in shown["history"]] == ["RUNTIME_ERROR"]
    assert alice.post("tasks/rejudge/", json=body).json() == {"changed": 1}
    assert alice.get(f"tasks/{wrong}/").json()["state"] == "queued"
    assert alice.get(f"tasks/{ok}/").json()["state"] == "done"
    assert bob.get(f"tasks/{bobs}/").json()["state"] == "done"


def test_it_lets_admins_rejudge_anyones_tasks_and_refuses_clients_naming_another(server: Server):
    alice, bob, ada, fred = (server.api(name) for name in ("alice", "bob", "ada", "fred"))
    register(fred, "n1")
    alices, bobs = ended(alice, fred, "OK"), ended(bob, fred, "OK")
    refused = alice.post("tasks/rejudge/", json={"owner": "bob"})
    assert refused.status_code == 403 and refused.json()["field"] == "owner"
    assert server.api("ivan").post("tasks/rejudge/", json={}).status_code == 403
    assert ada.post("tasks/rejudge/", json={"owner": "bob"}).json() == {"changed": 1}
    assert bob.get(f"tasks/{bobs}/").json()["state"] == "queued"
    assert alice.get(f"tasks/{alices}/").json()["state"] == "done"


def test_it_rejudges_a_batch_by_filter_and_refuses_an_unknown_batch(server: Server):
    alice, bob, fred = server.api("alice"), server.api("bob"), server.api("fred")
    register(fred, "n1")
    batch = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 3}).json()
    for _ in range(3):
        finish(fred, claim(fred, "n1", wait=0)["lease"]["id"])
    assert bob.post("tasks/rejudge/", json={"batch": batch["batch"]}).json()["field"] == "batch"
    bad = alice.post("tasks/rejudge/", json={"verdicts": ["MAYBE"]})
    assert bad.status_code == 400 and bad.json()["field"] == "verdicts[0]"
    answer = alice.post("tasks/rejudge/", json={"batch": batch["batch"]})
    assert answer.json() == {"changed": 3}
    progress = alice.get(f"batches/{batch['batch']}/").json()
    assert progress["states"]["queued"] == 3
