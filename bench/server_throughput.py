"""Submissions per second from one client (one by one and in batches) and claim+result cycles
per second with 1, 8 and 32 concurrent foremen, on SQLite and PostgreSQL, under the production
server (gunicorn, 2 workers x 64 threads), each with the server's own CPU per request (its
processes' user + system time, the database's not included): on a shared, loaded machine the
rates vary with the load, the CPU per request much less. Prints JSON.

    .venv/bin/python bench/server_throughput.py [--backend sqlite|postgres] [--single N]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil
from _servers import BACKENDS, Server, servers

TASK = {"task": {"image": "kolejka/busybox:latest", "args": ["true"], "limits": {"cpus": 1}}}
RESULT = {"result": 0, "status": "OK"}


def server_cpu(server: Server) -> float:
    """CPU seconds used so far by the server's processes (gunicorn's master and workers)."""
    assert server.pid is not None
    main = psutil.Process(server.pid)
    total = 0.0
    for process in [main, *main.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def measured(server: Server, count: int, run: Callable[..., float], *args: int) -> dict[str, float]:
    """The rate of `run(server, *args)` and the server's CPU milliseconds for each of the `count`
    things it did (submissions, tasks of a batch, claim+result cycles)."""
    before = server_cpu(server)
    rate = run(server, *args)
    return {
        "per_s": round(rate, 1),
        "server_cpu_ms_each": round((server_cpu(server) - before) * 1000 / count, 2),
    }


def submissions_single(server: Server, count: int) -> float:
    alice = server.api("alice")
    start = time.perf_counter()
    for _ in range(count):
        answer = alice.post("tasks/", json=TASK)
        assert answer.status_code == 201, answer.text
    return count / (time.perf_counter() - start)


def submissions_single_raw(server: Server, count: int) -> float:
    """The same through a bare keep-alive `http.client` connection: the server's own share,
    without the `requests` library's few milliseconds per call on the client side."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Token {server.tokens['alice']}"}
    headers["Content-Type"] = "application/json"
    body = json.dumps(TASK)
    start = time.perf_counter()
    for _ in range(count):
        connection.request("POST", "/api/v1/tasks/", body, headers)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 201, answer.status
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


def submissions_batch(server: Server, batches: int, size: int = 1000) -> float:
    alice = server.api("alice")
    start = time.perf_counter()
    for _ in range(batches):
        answer = alice.post("tasks/batch/", json={"tasks": [TASK] * size})
        assert answer.status_code == 201, answer.text
    return batches * size / (time.perf_counter() - start)


def cycles(server: Server, foremen: int, total: int) -> float:
    """Claim+result cycles per second, `foremen` at once, `total` cycles in all."""
    apis = [server.api("fred") for _ in range(foremen)]
    for index, api in enumerate(apis):
        answer = api.put(f"nodes/bench{foremen}-{index}/", json={"slots": 1000})
        assert answer.status_code == 200, answer.text
    left = [total]
    lock = threading.Lock()
    barrier = threading.Barrier(foremen)

    def work(index: int) -> int:
        api, node, done = apis[index], f"bench{foremen}-{index}", 0
        barrier.wait()
        while True:
            with lock:
                if left[0] <= 0:
                    return done
                left[0] -= 1
            got = api.post(f"nodes/{node}/claim/", json={"free": {"cpus": 64, "memory": "64G"}})
            lease = got.json()["lease"]
            assert lease is not None, "the queue ran dry"
            answer = api.post(f"leases/{lease['id']}/result/", json=RESULT)
            assert answer.status_code == 201, answer.text
            done += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(foremen) as pool:
        finished = sum(pool.map(work, range(foremen)))
    return finished / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--single", type=int, default=500, help="single submissions to time")
    parser.add_argument("--cycles", type=int, default=600, help="cycles per foremen count")
    options = parser.parse_args()
    backends = tuple(options.backend or BACKENDS)
    figures: dict[str, object] = {"cores": os.cpu_count(), "server": "gunicorn 2x64 gthread"}
    with servers(backends) as running:
        for backend, server in running.items():
            single, batch, total = options.single, 5, options.cycles
            figures[backend] = {
                "submissions_single": measured(server, single, submissions_single, single),
                "submissions_single_bare_http_client": measured(
                    server, single, submissions_single_raw, single
                ),
                "submissions_batch_of_1000": measured(
                    server, batch * 1000, submissions_batch, batch
                ),
                # The queue now holds enough for every cycle below.
                "claim_result_cycles": {
                    str(n): measured(server, total, cycles, n, total) for n in (1, 8, 32)
                },
            }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
