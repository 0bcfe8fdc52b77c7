"""Log latency: from a line printed in a running task to the line on the stdout of
``kolejka-client task log -f``.

    python bench/log_latency.py [SAMPLES]

A real server (gunicorn, SQLite), observer and foreman, and one task in docker that makes a
FIFO in its working folder and prints each line written into it. The benchmark writes a line
into the FIFO from the host (the workspace is a tmpfs under the foreman's work dir), then reads
``task log -f``'s stdout until the line comes; between samples it waits a random 0 to 0.5 s, so
that lines fall at any moment of the foreman's polling. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kolejka.client import TaskState
from tests.client.live import BIN, live_server, wait_for
from tests.foreman.grid import Grid, observer

# One reader and one writer for the whole run: a FIFO opened once per line drops lines in the
# gap between one reader's close and the next one's open.
SCRIPT = "mkfifo lines; echo ready; while read n; do echo line $n; done < lines"


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as name:
        root = Path(name)
        with live_server(root / "server") as server, observer(root) as watcher:
            grid = Grid(server, watcher, root)
            try:
                latencies = measure(grid, root, samples)
            finally:
                grid.close()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        json.dumps(
            {
                "benchmark": "log_latency",
                "samples": samples,
                "database": "sqlite",
                "latency_s": {
                    "p50": round(statistics.median(ordered), 4),
                    "p99": round(p99, 4),
                    "min": round(ordered[0], 4),
                    "max": round(ordered[-1], 4),
                    "mean": round(statistics.fmean(ordered), 4),
                },
            }
        )
    )


def measure(grid: Grid, root: Path, samples: int) -> list[float]:
    foreman = grid.foreman("bench-node", slots=1)
    task = grid.task(root / "task", ["sh", "-c", SCRIPT], stdout="out.txt")
    client = grid.client()
    key = client.submit(task).key
    follower = subprocess.Popen(
        [str(BIN / "kolejka-client"), "task", "log", key, "-f"],
        env=grid.env(),
        stdout=subprocess.PIPE,
    )
    assert follower.stdout is not None
    try:
        assert read_line(follower.stdout) == b"ready\n", foreman.text()
        fifo = next((root / "bench-node" / "workspaces").glob("kolejka-task-*/task/lines"))
        latencies = []
        with open(fifo, "w") as lines:
            for index in range(samples + 1):
                time.sleep(random.uniform(0, 0.5))
                start = time.perf_counter()
                lines.write(f"{index}\n")
                lines.flush()
                assert read_line(follower.stdout) == f"line {index}\n".encode()
                if index:  # the first one warms the connections up
                    latencies.append(time.perf_counter() - start)
        # The FIFO closed, the task ends; so does its log's follower.
        wait_for(lambda: follower.poll() is not None, "task log -f to end with the task", 120)
        assert client.task(key).state is TaskState.DONE
        return latencies
    finally:
        follower.kill()


def read_line(stream: object, deadline: float = 60) -> bytes:
    ready, _, _ = select.select([stream], [], [], deadline)
    assert ready, "no line within the deadline"
    return os.read(stream.fileno(), 4096)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
