"""How exact the reported CPU time and peak memory are, against programs whose use is known.

``kolejka-probe cpu 1`` spins for exactly 1.000 s of its own CPU time; ``kolejka-probe mem 100``
touches exactly 100 MiB of fresh memory. Both run in-process (accounting ``cgroup``) and through
an observer. For reference, the cost of runc's own init in a container's group (which the original
kolejka counted into every task) is measured on a bare ``docker run ... true``.

    python bench/accounting_accuracy.py [RUNS]
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from _worker import BUSYBOX, CGROUP_BASE, config, emit, image, observer, summary, task_folder

from kolejka.observer.cgroups import GroupLimits, Hierarchy
from kolejka.worker import execute

MiB = 2**20


def runtime_init_cost(runs: int) -> dict[str, object]:
    """What a bare container running `true` costs its group: runc's init, nearly all of it."""
    hierarchy = Hierarchy.discover()
    cpu, memory, pids = [], [], []
    for _ in range(runs):
        group = hierarchy.group(f"{CGROUP_BASE}-runc/{secrets.token_hex(4)}")
        group.create(GroupLimits())
        try:
            subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--log-driver",
                    "none",
                    "--cgroup-parent",
                    "/" + group.path,
                    BUSYBOX,
                    "true",
                ],
                check=True,
            )
            counters = group.counters()
        finally:
            group.remove()
        cpu.append(counters.cpu_usage)
        memory.append(counters.memory_peak / MiB)
        pids.append(float(counters.pids_peak or 0))
    return {
        "cpu_s": summary(cpu),
        "memory_peak_mib": summary(memory, 2),
        "pids_peak": summary(pids),
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    report: dict[str, object] = {"benchmark": "accounting_accuracy", "runs": runs}
    with (
        image(),
        tempfile.TemporaryDirectory(prefix="kolejka-bench-") as temp,
        observer() as socket,
    ):
        work = Path(temp)
        cpu_task = task_folder(
            work, "cpu", args=["kolejka-probe", "cpu", "1"], limits={"time": "30s"}
        )
        mem_task = task_folder(
            work, "mem", args=["kolejka-probe", "mem", "100", "0.1"], limits={"memory": "512M"}
        )
        for mode, settings in (("cgroup", config()), ("observer", config(observer=socket))):
            cpu_error, mem_error = [], []
            for index in range(runs):
                result = execute(cpu_task, work / f"{mode}-cpu-{index}", config=settings)
                assert result.status == "OK", result.to_dict()
                cpu_error.append(((result.stats.cpu.usage or 0) - 1.0) * 100)
                result = execute(mem_task, work / f"{mode}-mem-{index}", config=settings)
                assert result.status == "OK", result.to_dict()
                mem_error.append(((result.stats.memory.max_usage or 0) - 100 * MiB) / MiB)
            report[mode] = {
                "cpu_1s_error_percent": summary(cpu_error, 3),
                "cpu_within_1_percent": sum(abs(e) <= 1 for e in cpu_error),
                "memory_100mib_error_mib": summary(mem_error, 3),
                "memory_within_2_mib": sum(abs(e) <= 2 for e in mem_error),
            }
        report["runc_init_in_a_bare_container"] = runtime_init_cost(min(runs, 5))
    report["goals"] = {"cpu_error_percent": 1.0, "memory_error_mib": 2.0}
    emit(report)


if __name__ == "__main__":
    main()
