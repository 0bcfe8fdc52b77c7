"""Why a task waits (``tasks/{key}/why/``): its place in its owner's queue and, node by node,
what keeps each node from taking it, judged by the claim's own rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .flows import claim, register, submit
from .harness import Server, Template, serve


def why(server: Server, user: str, key: str) -> dict[str, Any]:
    answer = server.api(user).get(f"tasks/{key}/why/")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def by_node(explanation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in explanation["nodes"]}


def test_it_says_node_by_node_why_a_task_waits(server: Server):
    alice, fred, ada = server.api("alice"), server.api("fred"), server.api("ada")
    register(fred, "busy", capacity={"cpus": 2, "memory": "8G"})
    register(fred, "small", capacity={"cpus": 1, "memory": "8G"})
    register(fred, "gpus", capacity={"cpus": 4, "memory": "8G", "gpus": 2, "gpu_memory": "40G"})
    register(fred, "drained", capacity={"cpus": 4, "memory": "8G"})
    register(fred, "sick", capacity={"cpus": 4, "memory": "8G"})
    register(fred, "full", capacity={"cpus": 4, "memory": "8G"}, slots=1)
    assert ada.post("nodes/drained/drain/", json={"drain": True}).status_code == 200
    assert fred.post("nodes/sick/health/", json={"problems": ["observer down"]}).status_code == 200
    for node in ("busy", "full"):
        submit(alice, limits={"cpus": 1})
        assert claim(fred, node)["task"] is not None
    first = submit(alice, limits={"cpus": 2})
    waiting = submit(alice, limits={"cpus": 2, "gpus": 1, "gpu_memory": "80G"})
    submit(alice, limits={"cpus": 2})

    explanation = why(server, "alice", waiting["key"])
    assert (explanation["state"], explanation["position"], explanation["queued"]) == (
        "queued",
        2,
        3,
    )
    assert explanation["never"] is True  # no node has GPUs of 80G
    nodes = by_node(explanation)
    assert nodes["gpus"]["why"] == ["gpu_memory 80G > 40G"] and nodes["gpus"]["never"]
    assert nodes["small"]["why"] == ["needs cpus 2, 1 free"] and nodes["small"]["never"]

    explanation = why(server, "alice", first["key"])
    assert (explanation["position"], explanation["never"]) == (1, False)
    nodes = by_node(explanation)
    assert nodes["busy"] == {
        "name": "busy",
        "state": "up",
        "takes": False,
        "never": False,
        "why": ["needs cpus 2, 1 free"],
    }
    assert nodes["drained"]["why"] == ["node draining"]
    assert nodes["drained"]["state"] == "draining"
    assert nodes["sick"]["why"] == ["node unhealthy: observer down"]
    assert nodes["sick"]["state"] == "unhealthy"
    assert nodes["full"]["why"] == ["node runs 1 of 1 tasks (its slots)"]
    assert nodes["small"]["never"] and not nodes["small"]["takes"]
    assert (nodes["gpus"]["takes"], nodes["gpus"]["why"]) == (True, [])
    # The claim agrees: of these nodes only "gpus" takes it.
    for name in ("busy", "drained", "sick", "full", "small"):
        assert claim(fred, name)["task"] is None, name
    assert claim(fred, "gpus")["task"]["key"] == first["key"]
    assert why(server, "alice", first["key"]) == {
        "key": first["key"],
        "state": "assigned",
        "node": "gpus",
        "reason": None,
        "position": None,
        "queued": 0,
        "never": False,
        "nodes": [],
    }


def test_it_says_when_no_registered_node_could_ever_run_a_task(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice, requires=["gpu:h100"])
    assert why(server, "alice", task["key"])["nodes"] == []
    assert why(server, "alice", task["key"])["never"] is True
    register(fred, "n1")
    register(fred, "n2", tags=["gpu:a100"])
    explanation = why(server, "alice", task["key"])
    assert explanation["never"] is True
    assert [node["why"] for node in explanation["nodes"]] == [["node lacks tags gpu:h100"]] * 2
    assert "no registered node can ever run it" in explanation["reason"]


def test_it_shows_the_why_to_the_owner_inspectors_and_admins_only(server: Server):
    task = submit(server.api("alice"))
    for user in ("alice", "ivan", "ada"):
        assert why(server, user, task["key"])["position"] == 1
    answer = server.api("bob").get(f"tasks/{task['key']}/why/")
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
    assert server.api("bob").get("tasks/t-nosuchtask/why/").status_code == 404


@pytest.fixture
def avoiding(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server that retries a failed task at once, but not on the node that failed it."""
    with serve(
        templates["sqlite"], tmp_path / "data", KOLEJKA_RETRY_DELAY="0s", KOLEJKA_RETRY_AVOID="1h"
    ) as running:
        yield running


@pytest.fixture
def spacing(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server that lets no node retry a failed task for an hour."""
    with serve(templates["sqlite"], tmp_path / "data", KOLEJKA_RETRY_DELAY="1h") as running:
        yield running


def fail_once(server: Server) -> str:
    fred = server.api("fred")
    task = submit(server.api("alice"))
    register(fred, "n1")
    register(fred, "n2")
    lease = claim(fred, "n1")["lease"]
    failed = fred.post(f"leases/{lease['id']}/fail/", json={"error": "docker died"})
    assert failed.status_code == 200 and failed.json()["state"] == "queued", failed.text
    return str(task["key"])


def test_it_names_the_node_a_failed_attempt_avoids(avoiding: Server):
    key = fail_once(avoiding)
    nodes = by_node(why(avoiding, "alice", key))
    assert nodes["n1"]["why"][0].startswith("its last attempt failed on this node")
    assert nodes["n2"]["takes"] is True
    assert claim(avoiding.api("fred"), "n1")["task"] is None
    assert claim(avoiding.api("fred"), "n2")["task"]["key"] == key


def test_it_names_the_retry_spacing(spacing: Server):
    key = fail_once(spacing)
    explanation = why(spacing, "alice", key)
    for node in explanation["nodes"]:
        assert node["why"][0].startswith("retry spacing: no node takes it before"), node
    assert "attempt 1 of 3 failed: docker died" in explanation["reason"]
    assert claim(spacing.api("fred"), "n2")["task"] is None
