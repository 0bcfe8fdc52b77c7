"""Idle foremen held by one server: N simulated foremen each hold one long-poll claim against
`kolejka-server serve` (its default pool: 2 workers x 64 threads, 16 database connections each)
on PostgreSQL. For each N it prints the connections the server holds, its CPU while they all
wait, its RSS, the database connections it opened, how soon a new task reaches one of the waiting
foremen (p50/p99), how long a plain ``GET /me`` takes meanwhile, and the polls that failed.
Then M foremen cycle in a tight loop (claim, heartbeat, result) over a queue of small tasks, on
each backend, one task per claim ("single": slots 1) and as a foreman with `--slots` slots does
it ("batch": a claim for all its free slots, the next tasks in the answer to its last result):
cycles/s, and the claims/s of the server's processes (`--workers`, 1 by default). Prints JSON.

    .venv/bin/python bench/pollers.py [--idle 10,100,1000] [--busy 1,8,32,64] [--samples 20]
        [--backend postgres --backend sqlite] [--slots 8] [--workers 1]

The simulated foremen are threads of this process: with 1000 of them its own GIL adds to the
pickup figures, so they are an upper bound of what a real grid sees.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
from _servers import percentile

from tests.server.harness import Server, Template, serve

TASK = {"task": {"image": "kolejka/busybox:latest", "args": ["true"], "limits": {"cpus": 1}}}
FREE = {"cpus": 1, "memory": "1G"}
WAIT = 50  # seconds a poll waits on the server, below the client timeout below
TIMEOUT = 60  # the foreman's own request timeout


class Poller(threading.Thread):
    """One foreman: registers its node, then claims with a long-poll until told to stop,
    reporting the result of each task it gets at once."""

    def __init__(self, url: str, token: str, name: str, got: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.url, self.name, self.got = url, name, got
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.stop = threading.Event()
        self.failures = 0

    def run(self) -> None:
        api = f"{self.url}/api/v1"
        while not self.stop.is_set():
            try:
                answer = self.session.post(
                    f"{api}/nodes/{self.name}/claim/",
                    json={"wait": WAIT, "free": FREE},
                    timeout=TIMEOUT,
                )
            except requests.RequestException:
                self.failures += 1
                self.stop.wait(1)
                continue
            if answer.status_code != 200:
                self.failures += 1
                self.stop.wait(1)
                continue
            claim = answer.json()
            lease = claim["lease"]
            if lease is None:
                continue
            self.got[claim["task"]["key"]] = time.perf_counter()
            self.session.post(f"{api}/leases/{lease['id']}/result/", json={"result": 0})


def foremen(server: Server, prefix: str, count: int, got: dict[str, float]) -> list[Poller]:
    """`count` foremen, each with its own node, started."""
    fred = server.api("fred")
    pollers = []
    for index in range(count):
        fred.put(f"nodes/{prefix}-{index}/", json={"slots": 1})
        pollers.append(Poller(server.url, server.tokens["fred"], f"{prefix}-{index}", got))
    for poller in pollers:
        poller.start()
    return pollers


def tree(pid: int) -> list[psutil.Process]:
    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def held_connections(processes: list[psutil.Process], port: int) -> int:
    held = 0
    for process in processes:
        for conn in process.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port:
                held += 1
    return held


def database_connections(database: str) -> int:
    import psycopg

    url = os.environ["KOLEJKA_TEST_POSTGRES"]
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def until(condition: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def idle_round(template: Template, root: Path, count: int, samples: int) -> dict[str, object]:
    with serve(template, root / f"idle-{count}", workers=2, threads=64, **DEFAULTS) as server:
        port = int(server.url.rsplit(":", 1)[1])
        database = server.env["DATABASE_URL"].rsplit("/", 1)[1]
        fred = server.api("fred")
        got: dict[str, float] = {}
        pollers = foremen(server, "idle", count, got)
        processes = tree(server.pid or 0)
        until(lambda: held_connections(processes, port) >= count, 30)
        held = held_connections(processes, port)
        before = cpu_seconds(processes)
        time.sleep(10)  # the measured idle period itself, not a synchronisation
        idle_cpu = (cpu_seconds(processes) - before) / 10
        rss = sum(process.memory_info().rss for process in processes)
        db = database_connections(database)
        me_ms = []
        for _ in range(5):
            start = time.perf_counter()
            try:
                fred.get("me/", timeout=TIMEOUT)
                me_ms.append((time.perf_counter() - start) * 1000)
            except requests.RequestException:
                me_ms.append(TIMEOUT * 1000.0)
        bob = server.api("bob")
        pickups = []
        for _ in range(samples):
            sent = time.perf_counter()
            key = bob.post("tasks/", json=TASK).json()["key"]
            if until(lambda: key in got, TIMEOUT):  # noqa: B023 (called before the next loop)
                pickups.append((got[key] - sent) * 1000)
            else:
                pickups.append(TIMEOUT * 1000.0)
        for poller in pollers:
            poller.stop.set()
        return {
            "held_connections": held,
            "server_cpu_idle_share_of_a_core": round(idle_cpu, 3),
            "server_rss_mib": round(rss / 2**20, 1),
            "database_connections": db,
            "get_me_ms_p50": round(percentile(me_ms, 0.5), 1),
            "pickup_ms_p50": round(percentile(pickups, 0.5), 1),
            "pickup_ms_p99": round(percentile(pickups, 0.99), 1),
            "failed_polls": sum(poller.failures for poller in pollers),
        }


class Cycler(threading.Thread):
    """One busy foreman with `slots` slots: claims (all its free slots at once when `batch`),
    heartbeats and reports each task, asking for the next tasks with its last result when
    `batch`. Counts the tasks it ran in `done`."""

    def __init__(self, server: Server, name: str, slots: int, batch: bool) -> None:
        super().__init__(daemon=True)
        self.api = f"{server.url}/api/v1"
        self.name, self.slots, self.batch = name, slots, batch
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {server.tokens['fred']}"
        self.stop = threading.Event()
        self.done = self.failures = 0

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        try:
            answer = self.session.post(f"{self.api}/{path}", json=body, timeout=TIMEOUT)
        except requests.RequestException:  # the server stopping at the end of the round
            self.failures += 1
            return {}
        if answer.status_code not in (200, 201):
            self.failures += 1
            return {}
        return dict(answer.json())

    def run(self) -> None:
        free = {"cpus": self.slots, "memory": "8G"}
        count = self.slots if self.batch else 1
        claimed: list = []
        while not self.stop.is_set():
            if not claimed:
                body = {"wait": 5, "free": free, "max": count}
                claimed = list(self._post(f"nodes/{self.name}/claim/", body).get("claimed", []))
                continue
            for one in claimed:
                self._post(f"leases/{one['lease']['id']}/heartbeat/", {"running": True})
            *first, last = claimed
            for one in first:
                self._post(f"leases/{one['lease']['id']}/result/", {"result": 0})
            ask = f"?claim={count}" if self.batch else ""
            answer = self._post(f"leases/{last['lease']['id']}/result/{ask}", {"result": 0})
            self.done += len(claimed)
            claimed = list(answer.get("claimed", []))


def busy_round(
    template: Template, root: Path, count: int, tasks: int, slots: int, workers: int, batch: bool
) -> dict[str, object]:
    data = root / f"busy-{template.backend}-{count}-{batch}"
    with serve(template, data, workers=workers, threads=64, **DEFAULTS) as server:
        bob, fred = server.api("bob"), server.api("fred")
        for _ in range(tasks // 1000):
            bob.post("tasks/batch/", json={"tasks": [TASK] * 1000})
        cyclers = []
        for index in range(count):
            name = f"busy-{index}"
            fred.put(f"nodes/{name}/", json={"slots": slots if batch else 1})
            cyclers.append(Cycler(server, name, slots if batch else 1, batch))
        processes = tree(server.pid or 0)
        before = cpu_seconds(processes)
        start = time.perf_counter()
        for cycler in cyclers:
            cycler.start()
        until(lambda: sum(cycler.done for cycler in cyclers) >= tasks, 900)
        elapsed = time.perf_counter() - start
        server_cpu = (cpu_seconds(processes) - before) / elapsed
        for cycler in cyclers:
            cycler.stop.set()
        done = sum(cycler.done for cycler in cyclers)
        return {
            "cycles_per_s": round(done / elapsed, 1),
            "cycles": done,
            "server_cpu_cores": round(server_cpu, 2),
            "failed_requests": sum(cycler.failures for cycler in cyclers),
        }


DEFAULTS = {"KOLEJKA_DB_POOL_SIZE": "16", "KOLEJKA_MAX_WAIT": "60s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", default="10,100,1000", help="idle foremen per round")
    parser.add_argument("--busy", default="1,8,32,64", help="claiming foremen per round")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), action="append")
    parser.add_argument("--slots", type=int, default=8, help="slots of a batch-claiming foreman")
    parser.add_argument("--workers", type=int, default=1, help="server processes, busy rounds")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per busy round")
    parser.add_argument("--samples", type=int, default=20, help="pickups timed per idle round")
    options = parser.parse_args()
    os.environ.setdefault("KOLEJKA_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
    threading.stack_size(256 * 1024)
    idle: dict[str, object] = {}
    busy: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as name:
        root = Path(name)
        for backend in options.backend or ["postgres"]:
            template = Template(backend, root)
            try:
                if backend == "postgres":
                    for count in map(int, filter(None, options.idle.split(","))):
                        idle[str(count)] = idle_round(template, root, count, options.samples)
                for mode in ("single", "batch"):
                    for count in map(int, filter(None, options.busy.split(","))):
                        figures = busy_round(
                            template,
                            root,
                            count,
                            options.tasks,
                            options.slots,
                            options.workers,
                            mode == "batch",
                        )
                        busy.setdefault(f"{backend}-{mode}", {})[str(count)] = figures
            finally:
                template.close()
    print(json.dumps({"idle": idle, "busy": busy}, indent=2))


if __name__ == "__main__":
    main()
