"""The database decides races: many foremen claiming and reporting at once lose nothing and
duplicate nothing."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .flows import claim, register, result, spec
from .harness import Server

CLAIMERS = 8
TASKS = 1000


def test_it_claims_and_completes_every_task_exactly_once_under_concurrent_claims(grid: Server):
    alice = grid.api("alice")
    keys = []
    for _ in range(TASKS // 500):
        batch = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 500})
        assert batch.status_code == 201, batch.text
        keys += [task["key"] for task in batch.json()["tasks"]]
    assert len(set(keys)) == TASKS
    foremen = [grid.api("fred" if index % 2 else "gina") for index in range(CLAIMERS)]
    for index, foreman in enumerate(foremen):
        register(foreman, f"node{index}", slots=1000)
    barrier = threading.Barrier(CLAIMERS)
    claimed: list[list[str]] = [[] for _ in range(CLAIMERS)]
    completed: list[list[str]] = [[] for _ in range(CLAIMERS)]

    def work(index: int) -> None:
        foreman = foremen[index]
        barrier.wait()
        while True:
            answer = claim(foreman, f"node{index}", free={"cpus": 64, "memory": "64G"})
            if answer["task"] is None:
                return
            claimed[index].append(answer["task"]["key"])
            done = foreman.post(f"leases/{answer['lease']['id']}/result/", json=result())
            assert done.status_code == 201, done.text
            completed[index].append(done.json()["key"])

    with ThreadPoolExecutor(CLAIMERS) as pool:
        for future in [pool.submit(work, index) for index in range(CLAIMERS)]:
            future.result()

    claims = Counter(key for keys_ in claimed for key in keys_)
    completions = Counter(key for keys_ in completed for key in keys_)
    assert set(claims) == set(keys) and set(claims.values()) == {1}
    assert set(completions) == set(keys) and set(completions.values()) == {1}
    # Every claimer got work: the claims really raced.
    assert all(claimed)
    states = alice.get("queue/stats/").json()["states"]
    assert states["done"] == TASKS and states["queued"] == states["assigned"] == 0


def test_it_accepts_one_result_when_many_arrive_at_once(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    alice.post("tasks/", json={"task": spec()})
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    senders = [grid.api("fred") for _ in range(CLAIMERS)]
    barrier = threading.Barrier(CLAIMERS)

    def send(index: int) -> int:
        barrier.wait()
        return senders[index].post(f"leases/{lease}/result/", json=result()).status_code

    with ThreadPoolExecutor(CLAIMERS) as pool:
        statuses = Counter(pool.map(send, range(CLAIMERS)))
    assert statuses == {201: 1, 409: CLAIMERS - 1}
