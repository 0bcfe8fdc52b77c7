"""The whole grid on this machine against bare docker, side by side in one run: how long
``kolejka-client execute`` of a trivial task takes end to end (as a command and in-process),
how long the worker alone takes in-process, and how many trivial tasks one foreman with 2 slots
drains per minute against two parallel loops of bare ``docker run``, with the CPU each process
of the node spends per task while it drains (the machine's cores are what a node shares).

    python bench/grid_e2e.py [ROUNDS] [TASKS]

A real server (gunicorn, SQLite), observer and foreman; each round runs the command, the client
in-process, a bare ``docker run --rm --network none`` (as the worker runs tasks: no network) and
the worker in-process, one after the other, so that a load on the machine falls on all four.
kolejka is byte-compiled first, as an installed package is. Prints one JSON line: each ratio
against its goal in ``goals`` and ``met``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kolejka.client import TaskState
from kolejka.worker import WorkerConfig, execute
from tests.client.live import BIN, live_server, wait_for
from tests.foreman.grid import BUSYBOX, Grid, ObserverProcess, observer

ROOT = Path(__file__).resolve().parent.parent
BARE = ["docker", "run", "--rm", "--network", "none", BUSYBOX, "true"]
GOALS = {
    "command_minus_bare_s": 0.15,
    "in_process_worker_over_bare": 1.1,
    "drain_over_bare_2_parallel": 0.9,
}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p90": round(ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))], 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }


def timed(action: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kolejka")], check=True)
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as name:
        root = Path(name)
        with live_server(root / "server") as server, observer(root) as watcher:
            grid = Grid(server, watcher, root)
            try:
                figures = measure(grid, root, rounds, tasks, watcher)
            finally:
                grid.close()
    print(json.dumps({"benchmark": "grid_e2e", "rounds": rounds, "tasks": tasks, **figures}))


def cpu_seconds(pid: int) -> float:
    """The user and system CPU `pid` has used (from /proc, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_pids() -> dict[str, int]:
    """The docker engine's daemons on this machine, by name."""
    found = {}
    for name in ("dockerd", "containerd"):
        pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        if pids:
            found[name] = int(pids[0])
    return found


def measure(
    grid: Grid, root: Path, rounds: int, tasks: int, watcher: ObserverProcess
) -> dict[str, object]:
    socket = str(watcher.socket)
    foreman = grid.foreman("bench-node", "--claim-wait", "30s")
    trivial = grid.task(root / "trivial", ["true"])
    local = root / "local"  # the same task for the worker alone (no grid tag to require)
    local.mkdir()
    (local / "kolejka_task.json").write_text(json.dumps({"image": BUSYBOX, "args": ["true"]}))
    (root / "workspaces").mkdir()
    worker = WorkerConfig(
        observer=socket, temp_dir=root / "workspaces", cgroup_base="kolejka-bench"
    )
    client = grid.client()
    client.execute(trivial, root / "warm-up")  # the node is registered and warm
    execute(local, root / "warm-up-worker", config=worker)  # the shared docker client, made once
    command, in_process, bare, in_process_worker = [], [], [], []

    def run_command(index: int) -> None:
        done = subprocess.run(
            [str(BIN / "kolejka-client"), "execute", "-q", str(trivial), str(root / f"c{index}")],
            env=grid.env(),
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr.decode() + foreman.text()

    def run_worker(index: int) -> None:
        result = execute(local, root / f"w{index}", config=worker)
        assert result.status == "OK", result.to_dict()

    for index in range(rounds):
        command.append(timed(run_command, index))
        in_process.append(timed(client.execute, trivial, root / f"p{index}"))
        bare.append(timed(subprocess.run, BARE, check=True, capture_output=True))
        in_process_worker.append(timed(run_worker, index))

    assert watcher.process is not None
    node = {"observer": watcher.process.pid, "foreman": foreman.process.pid, **engine_pids()}
    used = {name: cpu_seconds(pid) for name, pid in node.items()}
    batch = client.submit_batch([trivial] * tasks)
    start = time.perf_counter()
    keys = [info.key for info in batch.tasks]
    wait_for(
        lambda: client.batch(batch.batch).states.get(str(TaskState.DONE), 0) == len(keys),
        f"{tasks} tasks to be done",
        deadline=1800,
    )
    drained = tasks / (time.perf_counter() - start) * 60
    cpu_ms = {
        name: round((cpu_seconds(pid) - used[name]) / tasks * 1000, 1) for name, pid in node.items()
    }
    bare_drained = bare_loops(tasks)
    median = {
        name: statistics.median(values)
        for name, values in (
            ("command", command),
            ("bare", bare),
            ("in_process_worker", in_process_worker),
        )
    }
    ratios = {
        "command_minus_bare_s": round(median["command"] - median["bare"], 4),
        "in_process_worker_over_bare": round(median["in_process_worker"] / median["bare"], 3),
        "drain_over_bare_2_parallel": round(drained / bare_drained, 3),
    }
    met = {  # a drain is better higher, the other figures lower
        name: ratios[name] >= goal if name.startswith("drain") else ratios[name] <= goal
        for name, goal in GOALS.items()
    }
    return {
        "client_execute_command_s": summary(command),
        "client_execute_in_process_s": summary(in_process),
        "bare_docker_run_s": summary(bare),
        "in_process_worker_s": summary(in_process_worker),
        "drained_per_minute": round(drained, 1),
        "slots": 2,
        "bare_docker_runs_per_minute_2_parallel": round(bare_drained, 1),
        "drain_cpu_ms_per_task": cpu_ms,
        **ratios,
        "goals": GOALS,
        "met": met,
    }


def bare_loops(tasks: int) -> float:
    """How many bare ``docker run``s two parallel loops finish per minute, `tasks` in all (the
    bound of any docker-based node with 2 slots)."""
    loop = f"for i in $(seq {tasks // 2}); do {' '.join(BARE)} >/dev/null || exit 1; done"
    start = time.perf_counter()
    loops = [subprocess.Popen(["sh", "-c", loop]) for _ in range(2)]
    assert all(process.wait() == 0 for process in loops)
    return 2 * (tasks // 2) / (time.perf_counter() - start) * 60


if __name__ == "__main__":
    main()
