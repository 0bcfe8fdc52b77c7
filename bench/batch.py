"""Batches at scale under the production server (gunicorn, 2 workers x 64 threads): submitting a
100,000-task batch in pages (tasks/s, and the server's peak RSS meanwhile), sealing and purging
it, and fetching the results of a 2,000-task batch of small results with `fetch_batch` (what
``kolejka-client batch get`` does). Prints JSON.

    .venv/bin/python bench/batch.py [--backend sqlite|postgres] [--tasks N] [--results N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from _servers import BACKENDS, Server, servers

from kolejka.client import KolejkaClient
from kolejka.common import Capacity, Result, Task, save_result


def server_rss(server: Server) -> int:
    """Bytes resident in the server's processes (gunicorn's master and workers)."""
    assert server.pid is not None
    main = psutil.Process(server.pid)
    total = 0
    for process in [main, *main.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


class PeakRss:
    """The highest `server_rss` seen every 50 ms while the block runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = server_rss(server)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, server_rss(self.server))

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def task(n: int) -> Task:
    return Task.from_dict(
        {
            "id": f"row-{n}",
            "image": "kolejka/busybox:latest",
            "args": ["echo", str(n)],
            "requires": ["bench-nowhere"],  # nothing claims them
        }
    )


def submission(server: Server, count: int) -> dict[str, float | int]:
    alice = KolejkaClient(server.url, token=server.tokens["alice"])
    tasks = [task(n) for n in range(count)]
    before = server_rss(server)
    with tempfile.TemporaryDirectory() as empty, PeakRss(server) as rss:
        began = time.perf_counter()
        key = alice.submit_array(tasks, empty)
        took = time.perf_counter() - began
    assert alice.batch(key).states["queued"] == count
    began = time.perf_counter()
    alice.purge_batch(key)
    purged = time.perf_counter() - began
    return {
        "tasks": count,
        "seconds": round(took, 2),
        "tasks_per_s": round(count / took),
        "server_rss_before_mib": round(before / 2**20, 1),
        "server_rss_peak_mib": round(rss.peak / 2**20, 1),
        "purge_s": round(purged, 2),
    }


def results(server: Server, count: int, root: Path) -> dict[str, float | int]:
    """A batch of `count` tasks whose results each hold one small file, run by four stand-in
    foremen (not timed); then the time to fetch them all into a new folder."""
    alice = KolejkaClient(server.url, token=server.tokens["alice"])
    fred = KolejkaClient(server.url, token=server.tokens["fred"])
    free = Capacity(cpus=4, memory=8 << 30, workspace=8 << 30)
    specs = [Task.from_dict({**task(n).to_dict(), "requires": ["bench"]}) for n in range(count)]
    key = alice.submit_array(specs, root)

    def run(node: str) -> None:
        fred.register_node(node, free, tags=["bench"])
        while True:
            claim = fred.claim(node, free, idle=True, wait=0)
            if claim.lease is None or claim.task is None or claim.task.task is None:
                return
            folder = root / "runs" / str(claim.task.task.id)
            folder.mkdir(parents=True)
            (folder / "out.txt").write_text(f"{claim.task.task.id}\n")
            files = {"out.txt": {"path": "out.txt"}}
            result = Result.from_dict({"result": 0, "status": "OK", "files": files})
            save_result(result, folder)
            fred.post_result(claim.lease, result, folder)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, [f"bench-{n}" for n in range(4)]))
    assert alice.batch(key).verdicts == {"OK": count}
    began = time.perf_counter()
    fetched = alice.fetch_batch(key, root / "results")
    took = time.perf_counter() - began
    assert fetched.written == count and not fetched.missing
    began = time.perf_counter()
    again = alice.fetch_batch(key, root / "results")
    resumed = time.perf_counter() - began
    assert again.kept == count
    return {"results": count, "get_s": round(took, 2), "get_again_s": round(resumed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks of the big batch")
    parser.add_argument("--results", type=int, default=2000, help="results fetched")
    args = parser.parse_args()
    backends = tuple(args.backend or ("sqlite",))
    figures: dict[str, object] = {}
    with servers(backends) as running:
        for backend, server in running.items():
            with tempfile.TemporaryDirectory(prefix="kolejka-bench-batch-") as root:
                figures[backend] = {
                    "submit": submission(server, args.tasks),
                    "get": results(server, args.results, Path(root)),
                }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
