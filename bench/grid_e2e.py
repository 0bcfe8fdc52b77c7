"""The whole grid on this machine: how long ``kolejka-client execute`` of a trivial task takes end
to end, and how many trivial tasks one foreman drains per minute.

    python bench/grid_e2e.py [ROUNDS] [TASKS]

A real server (gunicorn, SQLite), observer and foreman; the client as a command and in-process.
Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kolejka.client import TaskState
from tests.client.live import BIN, live_server, wait_for
from tests.foreman.grid import BUSYBOX, Grid, observer


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p90": round(ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))], 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as name:
        root = Path(name)
        with live_server(root / "server") as server, observer(root) as socket:
            grid = Grid(server, socket, root)
            try:
                figures = measure(grid, root, rounds, tasks)
            finally:
                grid.close()
    print(json.dumps({"benchmark": "grid_e2e", "rounds": rounds, "tasks": tasks, **figures}))


def measure(grid: Grid, root: Path, rounds: int, tasks: int) -> dict[str, object]:
    foreman = grid.foreman("bench-node", "--claim-wait", "30s")
    trivial = grid.task(root / "trivial", ["true"])
    client = grid.client()
    client.execute(trivial, root / "warm-up")  # the node is registered and warm
    command, in_process = [], []
    for index in range(rounds):
        start = time.perf_counter()
        done = subprocess.run(
            [str(BIN / "kolejka-client"), "execute", "-q", str(trivial), str(root / f"c{index}")],
            env=grid.env(),
            capture_output=True,
        )
        command.append(time.perf_counter() - start)
        assert done.returncode == 0, done.stderr.decode() + foreman.text()
        start = time.perf_counter()
        client.execute(trivial, root / f"p{index}")
        in_process.append(time.perf_counter() - start)

    batch = client.submit_batch([trivial] * tasks)
    start = time.perf_counter()
    keys = [info.key for info in batch.tasks]
    wait_for(
        lambda: client.batch(batch.batch).states.get(str(TaskState.DONE), 0) == len(keys),
        f"{tasks} tasks to be done",
        deadline=1800,
    )
    drained = time.perf_counter() - start
    return {
        "client_execute_command_s": summary(command),
        "client_execute_in_process_s": summary(in_process),
        "drained_per_minute": round(tasks / drained * 60, 1),
        "drain_seconds": round(drained, 2),
        "slots": 2,
        **engine_ceiling(rounds, tasks),
    }


def engine_ceiling(rounds: int, tasks: int) -> dict[str, object]:
    """What the docker engine alone does here: one bare ``docker run --rm --network none``, and
    how many of them two parallel loops finish per minute (the bound of any docker-based node)."""
    bare = ["docker", "run", "--rm", "--network", "none", BUSYBOX, "true"]
    single = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(bare, check=True, capture_output=True)
        single.append(time.perf_counter() - start)
    loop = f"for i in $(seq {tasks // 4}); do {' '.join(bare)} >/dev/null || exit 1; done"
    start = time.perf_counter()
    loops = [subprocess.Popen(["sh", "-c", loop]) for _ in range(2)]
    assert all(process.wait() == 0 for process in loops)
    return {
        "bare_docker_run_s": summary(single),
        "bare_docker_runs_per_minute_2_parallel": round(
            2 * (tasks // 4) / (time.perf_counter() - start) * 60, 1
        ),
    }


if __name__ == "__main__":
    main()
