"""Idle foremen held by one server: N simulated foremen each hold one long-poll claim against
`kolejka-server serve` (ASGI workers, 16 database connections each) on PostgreSQL. For each N it
prints the connections the server holds, its CPU while they all wait (share of one core), its
RSS, the database connections it opened, how soon a new task reaches one of the waiting foremen
(p50/p99), how long a plain ``GET /me`` takes meanwhile, and the polls that failed. Then M
foremen claim in a tight loop (claim, result) over a queue of small tasks: cycles/s. Prints JSON.

    .venv/bin/python bench/pollers.py [--idle 10,100,1000] [--busy 1,8,32] [--workers 1]

The simulated foremen are asyncio tasks of this process on one aiohttp session (a connection
each), so a thousand of them cost this process little and do not distort the pickup figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from _servers import percentile

from tests.server.harness import Server, Template, serve

TASK = {"task": {"image": "kolejka/busybox:latest", "args": ["true"], "limits": {"cpus": 1}}}
FREE = {"cpus": 1, "memory": "1G"}
WAIT = 50  # seconds a poll waits on the server, below the client timeout below
TIMEOUT = 60  # the foreman's own request timeout
DEFAULTS = {"KOLEJKA_DB_POOL_SIZE": "16", "KOLEJKA_MAX_WAIT": "60s"}


class Busy(Exception):
    """503: the server had no thread free for the check; `wait` is its ``Retry-After``."""

    def __init__(self, wait: float) -> None:
        self.wait = wait


class Grid:
    """The simulated foremen of one round: each registers its node, then claims with a
    long-poll until `stop`, reporting the result of each task it gets at once."""

    def __init__(self, server: Server, session: aiohttp.ClientSession) -> None:
        self.api = f"{server.url}/api/v1"
        self.session = session
        self.fred = {"Authorization": f"Token {server.tokens['fred']}"}
        self.bob = {"Authorization": f"Token {server.tokens['bob']}"}
        self.ada = server.tokens["ada"]
        self.got: dict[str, float] = {}
        self.arrived = asyncio.Condition()
        self.failures = 0
        self.busy = 0
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def call(self, method: str, path: str, headers: dict[str, str], **body: Any) -> Any:
        async with self.session.request(
            method, f"{self.api}/{path}", json=body or None, headers=headers
        ) as answer:
            if answer.status == 503:
                raise Busy(float(answer.headers.get("Retry-After", "1")))
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {await answer.text()}")
            return await answer.json()

    async def start(self, prefix: str, count: int) -> None:
        limit = asyncio.Semaphore(16)

        async def register(name: str) -> None:
            async with limit:
                await self.call("PUT", f"nodes/{name}/", self.fred, slots=1)

        names = [f"{prefix}-{index}" for index in range(count)]
        await asyncio.gather(*(register(name) for name in names))
        self.tasks = [asyncio.create_task(self.foreman(name)) for name in names]

    async def foreman(self, name: str) -> None:
        while not self.stop.is_set():
            try:
                claim = await self.call(
                    "POST", f"nodes/{name}/claim/", self.fred, wait=WAIT, free=FREE
                )
            except Busy as busy:
                self.busy += 1
                await asyncio.sleep(busy.wait)  # as the foreman does, not a synchronisation
                continue
            except (aiohttp.ClientError, TimeoutError, RuntimeError):
                self.failures += 1
                await asyncio.sleep(1)  # a failed poll's back-off, not a synchronisation
                continue
            if claim["lease"] is None:
                continue
            async with self.arrived:
                self.got[claim["task"]["key"]] = time.perf_counter()
                self.arrived.notify_all()
            await self.call("POST", f"leases/{claim['lease']['id']}/result/", self.fred, result=0)

    async def submit(self) -> str:
        return str((await self.call("POST", "tasks/", self.bob, **TASK))["key"])

    async def picked(self, key: str) -> float | None:
        async with self.arrived:
            try:
                await asyncio.wait_for(self.arrived.wait_for(lambda: key in self.got), TIMEOUT)
            except TimeoutError:
                return None
        return self.got[key]

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def tree(pid: int) -> list[psutil.Process]:
    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def held_connections(processes: list[psutil.Process], port: int) -> int:
    return sum(
        1
        for process in processes
        for conn in process.net_connections(kind="tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
    )


def database_connections(database: str) -> int:
    import psycopg

    with psycopg.connect(os.environ["KOLEJKA_TEST_POSTGRES"], autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def until_waiting(grid: Grid, count: int) -> None:
    """Until `count` polls wait on the server (its metric), or 120 s."""
    ada = {"Authorization": f"Token {grid.ada}"}
    end = time.monotonic() + 120
    while time.monotonic() < end:
        async with grid.session.get(
            grid.api.removesuffix("/api/v1") + "/metrics", headers=ada
        ) as answer:
            found = re.search(
                r'^kolejka_polls\{doing="waiting"\} (\S+)$', await answer.text(), re.M
            )
        if found and float(found.group(1)) >= count:
            return
        await asyncio.sleep(0.2)


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    )


async def idle_round(
    template: Template, root: Path, count: int, samples: int, workers: int
) -> dict[str, object]:
    with serve(template, root / f"idle-{count}", workers=workers, **DEFAULTS) as server:
        port = int(server.url.rsplit(":", 1)[1])
        database = server.env["DATABASE_URL"].rsplit("/", 1)[1]
        async with session() as client:
            grid = Grid(server, client)
            await grid.start("idle", count)
            processes = tree(server.pid or 0)
            started = time.perf_counter()
            await until_waiting(grid, count)
            settled = time.perf_counter() - started
            held = held_connections(processes, port)
            before = cpu_seconds(processes)
            await asyncio.sleep(10)  # the measured idle period itself, not a synchronisation
            idle_cpu = (cpu_seconds(processes) - before) / 10
            rss = sum(process.memory_info().rss for process in processes)
            db = database_connections(database)
            me_ms = []
            for _ in range(10):
                start = time.perf_counter()
                try:
                    await grid.call("GET", "auth/me/", grid.fred)
                    me_ms.append((time.perf_counter() - start) * 1000)
                except (aiohttp.ClientError, TimeoutError, RuntimeError):
                    me_ms.append(TIMEOUT * 1000.0)
            pickups = []
            for _ in range(samples):
                sent = time.perf_counter()
                got = await grid.picked(await grid.submit())
                pickups.append(TIMEOUT * 1000.0 if got is None else (got - sent) * 1000)
            await grid.close()
            return {
                "held_connections": held,
                "server_cpu_idle_share_of_a_core": round(idle_cpu, 3),
                "server_rss_mib": round(rss / 2**20, 1),
                "database_connections": db,
                "get_me_ms_p50": round(percentile(me_ms, 0.5), 1),
                "get_me_ms_max": round(max(me_ms), 1),
                "pickup_ms_p50": round(percentile(pickups, 0.5), 1),
                "pickup_ms_p99": round(percentile(pickups, 0.99), 1),
                "seconds_until_all_wait": round(settled, 1),
                "busy_503_answers": grid.busy,
                "failed_polls": grid.failures,
            }


async def busy_round(
    template: Template, root: Path, count: int, tasks: int, workers: int
) -> dict[str, object]:
    with serve(template, root / f"busy-{count}", workers=workers, **DEFAULTS) as server:
        async with session() as client:
            grid = Grid(server, client)
            for _ in range(tasks // 1000):
                await grid.call("POST", "tasks/batch/", grid.bob, tasks=[TASK] * 1000)
            start = time.perf_counter()
            await grid.start("busy", count)
            async with grid.arrived:
                await asyncio.wait_for(grid.arrived.wait_for(lambda: len(grid.got) >= tasks), 600)
            elapsed = time.perf_counter() - start
            await grid.close()
            return {"cycles_per_s": round(len(grid.got) / elapsed, 1), "cycles": len(grid.got)}


async def rounds(options: argparse.Namespace) -> dict[str, object]:
    idle: dict[str, object] = {}
    busy: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as name:
        root = Path(name)
        template = Template("postgres", root)
        try:
            for count in map(int, filter(None, options.idle.split(","))):
                idle[str(count)] = await idle_round(
                    template, root, count, options.samples, options.workers
                )
            for count in map(int, filter(None, options.busy.split(","))):
                busy[str(count)] = await busy_round(
                    template, root, count, options.tasks, options.workers
                )
        finally:
            template.close()
    return {"workers": options.workers, "idle": idle, "busy": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", default="10,100,1000", help="idle foremen per round")
    parser.add_argument("--busy", default="1,8,32", help="claiming foremen per round")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per busy round")
    parser.add_argument("--samples", type=int, default=20, help="pickups timed per idle round")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    options = parser.parse_args()
    os.environ.setdefault("KOLEJKA_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
    print(json.dumps(asyncio.run(rounds(options)), indent=2))


if __name__ == "__main__":
    main()
