"""The node list every user sees, forgetting nodes, and nodes shown down once they stop calling
in (their tasks requeued by the reaper)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .flows import claim, eventually, finish, register, submit
from .harness import Server, Template, serve


def listed(server: Server, user: str) -> dict[str, dict[str, Any]]:
    answer = server.api(user).get("nodes/")
    assert answer.status_code == 200, answer.text
    return {node["name"]: node for node in answer.json()["results"]}


def test_it_lists_the_nodes_to_every_user_with_what_each_may_see_running(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1", capacity={"cpus": 4, "memory": "8G", "gpus": 2, "gpu_memory": "40G"})
    register(server.api("gina"), "n2")
    mine = submit(alice, limits={"cpus": 3, "memory": "2G", "gpus": 1})
    assert claim(fred, "n1")["task"]["key"] == mine["key"]
    for user in ("alice", "bob", "ivan", "ada"):
        nodes = listed(server, user)
        assert sorted(nodes) == ["n1", "n2"], user
        n1 = nodes["n1"]
        assert (n1["state"], n1["busy"], n1["slots"]) == ("up", 1, 8)
        assert n1["capacity"]["gpu_memory"] == "40G"
        assert (n1["free"]["cpus"], n1["free"]["memory"], n1["free"]["gpus"]) == (1, "6G", 1)
        assert n1["last_seen"] is not None
        assert n1["running"] == ([] if user == "bob" else [mine["key"]]), user
    assert sorted(listed(server, "fred")) == ["n1"]  # a foreman, its own nodes


def test_it_shows_a_nodes_state(server: Server):
    fred, ada = server.api("fred"), server.api("ada")
    register(fred, "n1")
    assert ada.post("nodes/n1/drain/", json={"drain": True}).json()["state"] == "draining"
    sick = fred.post("nodes/n1/health/", json={"problems": ["observer down"]}).json()
    assert (sick["state"], sick["problems"]) == ("unhealthy", ["observer down"])
    fred.post("nodes/n1/health/", json={"problems": []})
    assert ada.post("nodes/n1/drain/", json={"drain": False}).json()["state"] == "up"


def test_it_forgets_a_node_only_once_it_holds_no_lease(server: Server):
    alice, fred, ada = server.api("alice"), server.api("fred"), server.api("ada")
    task = submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]
    refused = ada.delete("nodes/n1/")
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    assert "holds leases" in refused.json()["detail"]
    assert "n1" in listed(server, "ada")
    finish(fred, lease["id"])
    assert ada.delete("nodes/n1/").status_code == 204
    assert listed(server, "ada") == {}
    assert alice.get(f"tasks/{task['key']}/").json()["state"] == "done"
    assert fred.post("nodes/n1/claim/", json={"wait": 0}).status_code == 404
    assert ada.delete("nodes/n1/").status_code == 404
    assert fred.delete("nodes/n1/").status_code == 403
    register(fred, "n1")  # the foreman starting again
    assert "n1" in listed(server, "alice")


@pytest.fixture
def quick_down(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server whose leases last a second and whose nodes are down after two silent seconds."""
    with serve(
        templates["sqlite"],
        tmp_path / "data",
        KOLEJKA_LEASE_TTL="1s",
        KOLEJKA_MAX_WAIT="1s",
        KOLEJKA_NODE_DOWN_AFTER="2s",
        KOLEJKA_RETRY_DELAY="0s",
    ) as running:
        yield running


def test_it_shows_a_silent_node_down_and_requeues_its_tasks(quick_down: Server):
    alice, fred, gina = quick_down.api("alice"), quick_down.api("fred"), quick_down.api("gina")
    task = submit(alice, limits={"cpus": 2})
    register(fred, "dead")
    register(gina, "alive", capacity={"cpus": 1, "memory": "1G"})
    lease = claim(fred, "dead")["lease"]
    beat = fred.post(f"leases/{lease['id']}/heartbeat/", json={"running": True})
    assert beat.status_code == 200
    assert listed(quick_down, "alice")["dead"]["state"] == "up"

    # From here "dead" says nothing; "alive" goes on calling in (claims that take nothing, since
    # the task does not fit it), which is what reaps expired leases on a live grid.
    def requeued() -> bool:
        assert claim(gina, "alive", wait=0)["task"] is None
        return bool(alice.get(f"tasks/{task['key']}/").json()["state"] == "queued")

    eventually(requeued, what="the dead node's task requeued")
    shown = alice.get(f"tasks/{task['key']}/").json()
    assert "the lease on node dead expired" in shown["reason"]

    def down() -> dict[str, Any] | None:
        assert claim(gina, "alive", wait=0)["task"] is None
        nodes = listed(quick_down, "bob")
        return nodes if nodes["dead"]["state"] == "down" else None

    nodes = eventually(down, what="the dead node shown down")
    assert nodes["alive"]["state"] == "up"
    assert (nodes["dead"]["busy"], nodes["dead"]["running"]) == (0, [])
    verdict = {
        node["name"]: node
        for node in quick_down.api("alice").get(f"tasks/{task['key']}/why/").json()["nodes"]
    }
    assert verdict["dead"]["why"][0].startswith("node down: not seen since")
