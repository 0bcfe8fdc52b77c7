"""Claim latency at queue depth 100 and 100 000 (p50/p99; flat is the goal), and how soon an
idle foreman blocked in a long-poll claim gets a task after its submission, on SQLite and
PostgreSQL under the production server. Prints JSON.

    .venv/bin/python bench/claim_latency.py [--backend sqlite|postgres] [--deep N]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from _servers import BACKENDS, Server, percentile, servers

from tests.server.harness import Api

TASK = {"task": {"image": "kolejka/busybox:latest", "args": ["true"], "limits": {"cpus": 1}}}
FREE = {"free": {"cpus": 64, "memory": "64G"}}


def fill(server: Server, depth: int) -> None:
    """Queue `depth` tasks, most of them alice's and some of bob's (fair share has work)."""
    for name, share in (("alice", 0.9), ("bob", 0.1)):
        api, left = server.api(name), int(depth * share)
        while left:
            size = min(left, 1000)
            answer = api.post("tasks/batch/", json={"tasks": [TASK] * size})
            assert answer.status_code == 201, answer.text
            left -= size


def claim_latencies(server: Server, node: str, samples: int) -> list[float]:
    """Milliseconds per claim; each claimed task is released, so the depth stays put."""
    fred = server.api("fred")
    fred.put(f"nodes/{node}/", json={"slots": 1000})
    latencies = []
    for _ in range(samples):
        start = time.perf_counter()
        answer = fred.post(f"nodes/{node}/claim/", json=FREE)
        latencies.append((time.perf_counter() - start) * 1000)
        lease = answer.json()["lease"]
        assert lease is not None, answer.text
        fred.post(f"leases/{lease['id']}/release/")
    return latencies


def _wait_for_work(api: Api, got: dict[str, float], ready: threading.Event) -> None:
    ready.set()
    answer = api.post("nodes/idle/claim/", json={"wait": 30, **FREE})
    got["at"] = time.perf_counter()
    api.post(f"leases/{answer.json()['lease']['id']}/result/", json={"result": 0})


def wakeups(server: Server, samples: int) -> list[float]:
    """Milliseconds from sending a submission to the waiting foreman holding the task."""
    gina, bob = server.api("gina"), server.api("bob")
    gina.put("nodes/idle/", json={"slots": 1000})
    delays = []
    for _ in range(samples):
        got: dict[str, float] = {}
        ready = threading.Event()
        waiter = threading.Thread(target=_wait_for_work, args=(gina, got, ready))
        waiter.start()
        ready.wait()
        time.sleep(0.3)  # let the claim reach the server and go to sleep there
        sent = time.perf_counter()
        bob.post("tasks/", json=TASK)
        waiter.join()
        delays.append((got["at"] - sent) * 1000)
    return delays


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--deep", type=int, default=100_000, help="the deep queue's depth")
    parser.add_argument("--samples", type=int, default=300, help="claims timed per depth")
    options = parser.parse_args()
    backends = tuple(options.backend or BACKENDS)
    figures: dict[str, object] = {}
    with servers(backends) as running:
        for backend, server in running.items():
            # Wake-ups first, on an empty queue: the idle foreman must get the new task.
            wake = wakeups(server, 40)
            fill(server, 100)
            shallow = claim_latencies(server, "shallow", options.samples)
            fill(server, options.deep - 100)
            deep = claim_latencies(server, "deep", options.samples)
            figures[backend] = {
                "claim_at_depth_100": summary(shallow),
                f"claim_at_depth_{options.deep}": summary(deep),
                "idle_foreman_gets_new_task_after": summary(wake),
            }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
