"""``kolejka-client task why`` and ``node list|drain|undrain|forget`` against a real server."""

import json

from kolejka.common import Capacity

from .conftest import make_task
from .live import StandInForeman
from .test_cli_commands import one_line_error

GPU_NODE = Capacity(cpus=4, memory=8 << 30, gpus=2, gpu_memory=40 << 30, workspace=8 << 30)


def gpu_foreman(server, tag) -> StandInForeman:
    foreman = StandInForeman(server, tag)
    foreman.free = GPU_NODE
    foreman.client.register_node(foreman.name, GPU_NODE, tags=[tag])
    return foreman


def test_it_says_why_no_node_could_ever_run_a_task(cli, server, tmp_path, tag):
    node = gpu_foreman(server, tag).name
    folder = make_task(tmp_path / "big", tag, limits={"gpus": 1, "gpu_memory": "80G"})
    key = server.client("alice").submit(folder).key
    done = cli("task", "why", key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{key}: queued\nposition  ")
    assert "no registered node could ever run it" in done.stdout
    line = next(line for line in done.stdout.splitlines() if line.startswith(node))
    assert line.split()[1:3] == ["up", "never"] and line.endswith("gpu_memory 80G > 40G")
    answer = json.loads(cli("task", "why", "--json", key).stdout)
    assert answer["never"] is True and answer["position"] >= 1
    verdicts = {verdict["name"]: verdict for verdict in answer["nodes"]}
    assert verdicts[node]["why"] == ["gpu_memory 80G > 40G"]
    assert all(verdict["never"] for verdict in answer["nodes"])


def test_it_says_which_node_is_drained_and_which_may_take_a_task(cli, server, tmp_path, tag):
    node = gpu_foreman(server, tag).name
    key = server.client("alice").submit(make_task(tmp_path / "t", tag)).key
    drained = cli("node", "drain", node, user="ada")
    assert (drained.returncode, drained.stdout) == (0, f"{node}: draining\n"), drained.stderr
    rows = cli("task", "why", key).stdout.splitlines()
    line = next(line for line in rows if line.startswith(node))
    assert line.split()[1:4] == ["draining", "not", "now"] and line.endswith("node draining")
    status = cli("task", "status", key).stdout
    assert "in its owner's queue" in status
    assert f"node      {node} (draining): node draining" in status
    undrained = cli("node", "undrain", node, user="ada")
    assert (undrained.returncode, undrained.stdout) == (0, f"{node}: up\n")
    status = cli("task", "status", key).stdout
    assert f"node      {node} (up): may take it at its next claim" in status
    assert "could ever run it" not in status


def test_it_says_a_claimed_task_does_not_wait(cli, server, tmp_path, tag):
    foreman = StandInForeman(server, tag)
    key = server.client("alice").submit(make_task(tmp_path / "t", tag)).key
    foreman.claim()
    done = cli("task", "why", key)
    assert done.stdout == f"{key} is assigned on {foreman.name}: it does not wait in the queue\n"


def test_it_lists_the_nodes_to_a_client(cli, server, tmp_path, tag):
    foreman = gpu_foreman(server, tag)
    key = server.client("alice").submit(make_task(tmp_path / "t", tag, limits={"gpus": 1})).key
    foreman.claim()
    done = cli("node", "list", user="bob")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == [
        "NAME", "STATE", "TASKS", "CPUS", "MEMORY", "GPUS", "LAST", "SEEN", "PROBLEMS"
    ]  # fmt: skip
    row = next(row for row in rows if row.startswith(foreman.name)).split()
    assert row[1:6] == ["up", "1/1", "3/4", "8G/8G", "1/2"] and row[6] == "x40G"
    listed = json.loads(cli("node", "list", "--json", user="bob").stdout)
    mine = next(node for node in listed if node["name"] == foreman.name)
    assert (mine["busy"], mine["running"], mine["free"]["gpus"]) == (1, [], 1)
    listed = json.loads(cli("node", "list", "--json").stdout)
    assert next(node for node in listed if node["name"] == foreman.name)["running"] == [key]


def test_it_forgets_a_node_for_an_admin_once_it_holds_no_lease(cli, server, tmp_path, tag):
    foreman = StandInForeman(server, tag)
    server.client("alice").submit(make_task(tmp_path / "t", tag))
    lease = foreman.claim().lease
    one_line_error(cli("node", "forget", foreman.name, user="ada"), 2, "holds leases")
    foreman.client.release(lease)
    done = cli("node", "forget", foreman.name, user="ada")
    assert (done.returncode, done.stdout) == (0, f"{foreman.name}: forgotten\n"), done.stderr
    assert foreman.name not in cli("node", "list").stdout
    one_line_error(cli("node", "forget", foreman.name, user="ada"), 2, f"node {foreman.name}: ")


def test_it_refuses_node_changes_to_others_than_admins_in_one_line(cli, foreman):
    for verb in ("drain", "undrain", "forget"):
        one_line_error(cli("node", verb, foreman.name), 2, f"node {foreman.name}: ", "admin")
    one_line_error(cli("task", "why", "t-nope"), 2, "task t-nope: ")
