"""Bad requests get the one JSON error shape and a 4xx, never a 5xx, and change nothing."""

from __future__ import annotations

import pytest

from .harness import Server


def test_it_asks_anonymous_callers_to_authenticate(shared: Server):
    anonymous = shared.api(None)
    answer = anonymous.get("tasks/")
    assert answer.status_code == 401
    assert answer.json()["code"] == "not_authenticated"
    assert answer.headers["WWW-Authenticate"] == "Token"
    bad = anonymous.get("tasks/", headers={"Authorization": "Token nonsense"})
    assert bad.status_code == 401 and bad.json()["code"] == "authentication_failed"


def test_it_refuses_a_wrong_password_and_revokes_a_token_on_logout(shared: Server):
    anonymous = shared.api(None)
    wrong = anonymous.post("auth/token/", json={"username": "alice", "password": "guess"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "authentication_failed"
    missing = anonymous.post("auth/token/", json={"username": "alice"})
    assert missing.status_code == 400 and missing.json()["field"] == "password"


def test_it_answers_malformed_json_with_a_parse_error(shared: Server):
    answer = shared.api("alice").post(
        "tasks/", data=b'{"task": ', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["code"] == "parse_error"


def test_it_refuses_bodies_that_are_not_objects(shared: Server):
    alice, fred = shared.api("alice"), shared.api("fred")
    assert alice.post("tasks/", json=[1, 2]).status_code == 400
    assert alice.post("tasks/batch/", json="tasks").status_code == 400
    assert fred.put("nodes/n1/", json=[]).status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"capacity": {"cpus": "many"}}, "capacity.cpus"),
        ({"capacity": {"memory": "8X"}}, "capacity.memory"),
        ({"capacity": {"disks": 2}}, "capacity.disks"),
        ({"defaults": {"memory": -1}}, "defaults.memory"),
        ({"tags": "gpu"}, "tags"),
        ({"slots": 0}, "slots"),
        ({"slots": True}, "slots"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_refuses_a_bad_node_naming_the_field(shared: Server, body, field):
    answer = shared.api("fred").put("nodes/bad/", json=body)
    assert answer.status_code == 400 and answer.json()["field"] == field


def test_it_refuses_bad_claims_and_waits(shared: Server):
    fred, alice = shared.api("fred"), shared.api("alice")
    assert fred.put("nodes/n1/", json={}).status_code == 200
    for body, field in (
        ({"wait": -1}, "wait"),
        ({"wait": True}, "wait"),
        ({"wait": "soon"}, "wait"),
        ({"idle": "yes"}, "idle"),
        ({"free": {"cpus": -1}}, "free.cpus"),
        ({"mood": 1}, "mood"),
    ):
        answer = fred.post("nodes/n1/claim/", json=body)
        assert answer.status_code == 400 and answer.json()["field"] == field, body
    assert alice.get("tasks/t-none/?wait=nan").status_code == 404
    assert fred.put("nodes/..%2Fetc/", json={}).status_code in (400, 404)


def test_it_keeps_roles_apart(shared: Server):
    alice, fred, ivan = shared.api("alice"), shared.api("fred"), shared.api("ivan")
    assert alice.put("nodes/n9/", json={}).json()["code"] == "permission_denied"
    assert alice.delete("nodes/n9/").status_code == 403
    assert fred.post("tasks/", json={"task": {}}).status_code == 403
    assert ivan.post("nodes/n9/drain/", json={"drain": True}).status_code == 403
    assert alice.put("images/", json={"name": "x", "reference": "0" * 64}).status_code == 403


def test_it_answers_unknown_urls_and_methods_in_json(shared: Server):
    alice = shared.api("alice")
    missing = alice.get("no/such/thing/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = alice.put("tasks/", json={})
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    xml = alice.post("tasks/", data="<task/>", headers={"Content-Type": "application/xml"})
    assert xml.status_code == 415 and xml.json()["code"] == "unsupported_media_type"
