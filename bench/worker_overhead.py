"""How much time kolejka-worker adds to running a trivial task, against bare docker.

Interleaved rounds of: ``docker run --rm IMAGE true`` (default bridge network and with
``--network none``), ``kolejka-worker execute`` of the same ``true`` task (a new process each
time, as a user runs it; with and without an observer), and ``kolejka.worker.execute`` called
in-process as the foreman calls it. Also the start-up cost of the CLI's interpreter and imports
(kolejka's own, and the docker SDK's). kolejka is byte-compiled first, as an installed package is.

    python bench/worker_overhead.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _worker import (
    BUSYBOX,
    CGROUP_BASE,
    ROOT,
    config,
    emit,
    image,
    observer,
    summary,
    task_folder,
    timed,
)

from kolejka.worker import execute


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kolejka")], check=True)
    cli = [sys.executable, "-m", "kolejka.worker.cli", "execute", "--cgroup-base", CGROUP_BASE]
    times: dict[str, list[float]] = {
        name: []
        for name in (
            "docker_run_bridge",
            "docker_run_network_none",
            "cli",
            "cli_observer",
            "in_process",
            "in_process_observer",
            "cli_startup",
            "docker_sdk_import",
        )
    }
    with (
        image(),
        tempfile.TemporaryDirectory(prefix="kolejka-bench-") as temp,
        observer() as socket,
    ):
        work = Path(temp)
        task = task_folder(work, "task", args=["true"])
        plain, observed = config(), config(observer=socket)
        execute(task, work / "warm", config=plain)  # the shared docker client, made once
        execute(task, work / "warm-observer", config=observed)
        for index in range(rounds):
            out = work / f"r{index}"
            times["docker_run_bridge"].append(timed(["docker", "run", "--rm", BUSYBOX, "true"]))
            times["cli"].append(timed([*cli, str(task), str(out / "cli")]))
            times["docker_run_network_none"].append(
                timed(["docker", "run", "--rm", "--network", "none", BUSYBOX, "true"])
            )
            start = time.perf_counter()
            result = execute(task, out / "in-process", config=plain)
            times["in_process"].append(time.perf_counter() - start)
            assert result.status == "OK", result.to_dict()
            times["cli_observer"].append(
                timed([*cli, "--observer", socket, str(task), str(out / "cli-observer")])
            )
            start = time.perf_counter()
            execute(task, out / "in-process-observer", config=observed)
            times["in_process_observer"].append(time.perf_counter() - start)
            times["cli_startup"].append(
                timed([sys.executable, "-c", "import kolejka.worker.cli, kolejka.worker.run"])
            )
            times["docker_sdk_import"].append(
                timed([sys.executable, "-c", "import docker"])
                - timed([sys.executable, "-c", "pass"])
            )
    median = {name: statistics.median(values) for name, values in times.items()}
    emit(
        {
            "benchmark": "worker_overhead",
            "rounds": rounds,
            "seconds": {name: summary(values) for name, values in times.items()},
            "cli_minus_docker_run_bridge_s": round(median["cli"] - median["docker_run_bridge"], 4),
            "cli_minus_docker_run_network_none_s": round(
                median["cli"] - median["docker_run_network_none"], 4
            ),
            "cli_observer_minus_docker_run_bridge_s": round(
                median["cli_observer"] - median["docker_run_bridge"], 4
            ),
            "in_process_over_docker_run_bridge": round(
                median["in_process"] / median["docker_run_bridge"], 3
            ),
            "in_process_over_docker_run_network_none": round(
                median["in_process"] / median["docker_run_network_none"], 3
            ),
            "in_process_observer_over_docker_run_network_none": round(
                median["in_process_observer"] / median["docker_run_network_none"], 3
            ),
            "goals": {"cli_minus_bare_s": 0.12, "in_process_over_bare": 1.15},
        }
    )


if __name__ == "__main__":
    main()
