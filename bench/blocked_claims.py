"""Claim latency with 100 and with 100 000 blocked tasks (p50/p99) in the same run, and their
ratio, for tasks waiting for dependencies (outside the claim's index), queued tasks needing a tag
no node has (a queue the claim never reads) and queued tasks too large for any node (passed over
in SQL): each ratio should be about 1. Then head-of-line blocking: 300 of alice's tasks needing a
tag no node has queued ahead of 100 of hers that run (behind all the blocked tasks before): all
100 must finish. On SQLite and
PostgreSQL under the production server. Prints JSON.

    .venv/bin/python bench/blocked_claims.py [--backend sqlite|postgres] [--blocked N]
"""

from __future__ import annotations

import argparse
import json
import time

from _servers import BACKENDS, Server, servers
from claim_latency import TASK, claim_latencies, summary

NOWHERE = {"task": {**TASK["task"], "requires": ["nowhere"]}}  # no node takes it: never ends
HUGE = {"task": {**TASK["task"], "limits": {"cpus": 1, "memory": "1P"}}}  # fits no node


def queue(server: Server, row: dict[str, object], count: int) -> None:
    """`count` of alice's tasks like `row`."""
    alice = server.api("alice")
    while count:
        size = min(count, 1000)
        answer = alice.post("tasks/batch/", json={"tasks": [row] * size})
        assert answer.status_code == 201, answer.text
        count -= size


def ratios(few: list[float], many: list[float], blocked: int) -> dict[str, object]:
    return {
        "claim_with_100_blocked": summary(few),
        f"claim_with_{blocked}_blocked": summary(many),
        "ratio_p50": round(summary(many)["p50_ms"] / summary(few)["p50_ms"], 2),
        "ratio_p99": round(summary(many)["p99_ms"] / summary(few)["p99_ms"], 2),
    }


def head_of_line(server: Server) -> dict[str, object]:
    """Claim and report on a node with a tag of its own until alice's 100 runnable tasks,
    queued behind 300 of hers that need a tag no node has, are done (or two minutes pass)."""
    alice, fred = server.api("alice"), server.api("fred")
    queue(server, NOWHERE, 300)
    keys = [
        task["key"]
        for task in alice.post("tasks/batch/", json={"tasks": [TASK] * 100}).json()["tasks"]
    ]
    fred.put(
        "nodes/hol/", json={"slots": 8, "tags": ["gpu"], "capacity": {"cpus": 8, "memory": "8G"}}
    )
    start, left = time.perf_counter(), set(keys)
    # Until the queue has nothing left this node can run (the others' tasks run too).
    while left and time.perf_counter() - start < 120:
        answer = fred.post("nodes/hol/claim/", json={"max": 8, "wait": 0}).json()
        for one in answer["claimed"]:
            fred.post(f"leases/{one['lease']['id']}/result/", json={"result": 0})
            left.discard(one["task"]["key"])
        if not answer["claimed"]:
            break
    states = [alice.get(f"tasks/{key}/").json()["state"] for key in keys]
    return {
        "unrunnable_ahead": 300,
        "runnable": len(keys),
        "finished": states.count("done"),
        "seconds": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--blocked", type=int, default=100_000, help="the larger count")
    parser.add_argument("--samples", type=int, default=300, help="claims timed per count")
    options = parser.parse_args()
    backends = tuple(options.backend or BACKENDS)
    figures: dict[str, object] = {}
    with servers(backends) as running:
        for backend, server in running.items():
            alice, bob = server.api("alice"), server.api("bob")
            root = alice.post("tasks/", json=NOWHERE).json()["key"]
            for api in (alice, bob):  # claimable work of two owners, fair share has work
                answer = api.post("tasks/batch/", json={"tasks": [TASK] * 100})
                assert answer.status_code == 201, answer.text
            figures[backend] = {}
            # Each kind of blocked task in turn, on top of the ones before.
            for kind, row in (
                ("waiting", {**TASK, "after": [root]}),
                ("tagged", NOWHERE),
                ("huge", HUGE),
            ):
                queue(server, row, 100)
                few = claim_latencies(server, f"few-{kind}", options.samples)
                queue(server, row, options.blocked - 100)
                many = claim_latencies(server, f"many-{kind}", options.samples)
                figures[backend][kind] = ratios(few, many, options.blocked)
            stats = alice.get("queue/stats/").json()["states"]
            assert stats["waiting"] == options.blocked, stats
            figures[backend]["head_of_line"] = head_of_line(server)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
