"""Dependencies with real processes: a DAG of 50 tasks submitted as one batch runs on two real
foremen (docker containers) in an order its edges allow, and the tasks a failure dooms are
cancelled with the reason while the ones waiting for a failure (``notok``) or for anything
(``any``) run."""

from __future__ import annotations

import random
from collections.abc import Iterator

from kolejka.client import TaskState
from kolejka.common import Task

from ..client.live import wait_for

NODES = 50
FAILING = {4, 11, 23, 31}


def dag(seed: int = 12) -> Iterator[list[tuple[int, str]]]:
    """Each node's dependencies on earlier nodes: (node, when), up to three, mostly ``ok``."""
    rng = random.Random(seed)
    for node in range(NODES):
        count = 0 if node < 3 else rng.choice((1, 1, 2, 3))
        earlier = rng.sample(range(node), min(count, node))
        yield [(on, rng.choice(("ok", "ok", "ok", "notok", "any"))) for on in sorted(earlier)]


def expected(edges: list[list[tuple[int, str]]]) -> dict[int, str]:
    """What each node ends as: ``OK``, ``RUNTIME_ERROR`` or ``cancelled``, by the rules."""
    ends: dict[int, str] = {}
    for node, needs in enumerate(edges):
        met = all(when == "any" or (ends[on] == "OK") == (when == "ok") for on, when in needs)
        ends[node] = ("RUNTIME_ERROR" if node in FAILING else "OK") if met else "cancelled"
    return ends


def test_it_runs_a_dag_of_50_tasks_in_an_order_its_edges_allow(make_grid, tmp_path):
    grid = make_grid()
    edges = list(dag())
    ends = expected(edges)
    # The run tells something only if all three kinds of ends happen.
    assert {"OK", "RUNTIME_ERROR", "cancelled"} <= set(ends.values())
    tasks = [
        Task.from_dict(
            {
                "id": f"node-{node}",
                "image": "kolejka/busybox:latest",
                "args": ["sh", "-c", "exit 1" if node in FAILING else "true"],
                "requires": [grid.tag],
            }
        )
        for node in range(NODES)
    ]
    client = grid.client()
    batch = client.submit_array(
        tasks, tmp_path, each_after=[[f"{when}:#{on}" for on, when in needs] for needs in edges]
    )
    for name in ("node-a", "node-b"):
        grid.foreman(name, slots=2)
    wait_for(lambda: client.batch(batch).final == NODES, "the DAG to end", 900)

    infos = {info.position: info for info in client.batch_tasks(batch)}
    for node, needs in enumerate(edges):
        info = infos[node]
        if ends[node] == "cancelled":
            assert info.state is TaskState.CANCELLED, (node, info.state)
            assert info.started is None and info.error is not None
            assert info.error.startswith("dependency "), info.error
            continue
        assert info.state is TaskState.DONE, (node, info.state, info.error)
        assert info.result is not None and str(info.result.status) == ends[node], node
        for on, _ in needs:
            before = infos[on]
            # It started only after what it waited for ended (the server's clock for both).
            assert before.finished is not None and info.started is not None
            assert info.started >= before.finished, (node, on)
