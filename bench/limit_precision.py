"""How far past `cpu_time` and `time` a task runs before it is stopped (p50 and p99 of RUNS).

- ``cpu_time`` 0.5 s on an endless CPU loop: the overshoot is the kernel's CPU count of the
  task minus 0.5 s.
- ``time`` 0.5 s on a sleeper that prints its wall-clock start (``kolejka-probe sleep``): the
  overshoot is the moment the kernel reports the program dead (a pidfd this benchmark opens on
  docker's ``start`` event) minus (start + 0.5 s), a measure independent of the observer and a
  little pessimistic (the printed start is a little after the real one). The observer's own
  figure (stats.time - 0.5 s) is given too.

Both in-process (accounting ``cgroup``) and through an observer.

    python bench/limit_precision.py [RUNS]
"""

from __future__ import annotations

import os
import secrets
import select
import sys
import tempfile
import threading
import time
from pathlib import Path

from _worker import config, emit, image, observer, summary, task_folder

from kolejka.worker import execute

LIMIT = 0.5


class Deaths:
    """When the first process of each container labelled with this run's id died, seen by the
    kernel: a pidfd opened on docker's ``start`` event becomes readable at the exit."""

    def __init__(self, label: str) -> None:
        from kolejka.worker import WorkerConfig
        from kolejka.worker.engine import client

        self.deaths: dict[str, float] = {}
        self._api = client(WorkerConfig().docker_url)
        self._events = self._api.events(
            decode=True,
            filters={"type": "container", "event": "start", "label": f"org.kolejka.bench={label}"},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for event in self._events:
            run = event["Actor"]["Attributes"].get("org.kolejka.bench-run")
            try:
                pid = self._api.inspect_container(event["id"])["State"]["Pid"]
                fd = os.pidfd_open(pid)
            except Exception:  # already gone: no figure for this run
                continue
            threading.Thread(target=self._watch, args=(run, fd), daemon=True).start()

    def _watch(self, run: str, fd: int) -> None:
        select.select([fd], [], [])
        self.deaths[run] = time.time()
        os.close(fd)

    def stop(self) -> None:
        self._events.close()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    label = secrets.token_hex(4)
    deaths = Deaths(label)
    report: dict[str, object] = {"benchmark": "limit_precision", "runs": runs, "limit_s": LIMIT}
    with (
        image(),
        tempfile.TemporaryDirectory(prefix="kolejka-bench-") as temp,
        observer() as socket,
    ):
        work = Path(temp)
        spinner = task_folder(
            work,
            "cpu",
            args=["kolejka-probe", "cpu", "60"],
            limits={"cpu_time": f"{LIMIT}s", "time": "60s"},
        )
        sleeper = task_folder(
            work,
            "sleep",
            args=["kolejka-probe", "sleep", "60"],
            stdout="out.txt",
            limits={"time": f"{LIMIT}s"},
        )
        for mode, observer_socket in (("cgroup", None), ("observer", socket)):
            cpu_over, time_over, time_over_reported = [], [], []
            for index in range(runs):
                settings = config(observer=observer_socket)
                result = execute(spinner, work / f"{mode}-cpu-{index}", config=settings)
                assert result.status == "CPU_TIME_LIMIT", result.to_dict()
                cpu_over.append(((result.stats.cpu.usage or 0) - LIMIT) * 1000)
                run = f"{mode}-{index}"
                settings = config(
                    observer=observer_socket,
                    labels=(("org.kolejka.bench", label), ("org.kolejka.bench-run", run)),
                )
                folder = work / f"{mode}-time-{index}"
                result = execute(sleeper, folder, config=settings)
                assert result.status == "TIME_LIMIT", result.to_dict()
                start = float((folder / "out.txt").read_text().split()[1])
                for _ in range(100):
                    if run in deaths.deaths:
                        break
                    threading.Event().wait(0.05)
                time_over.append((deaths.deaths[run] - start - LIMIT) * 1000)
                time_over_reported.append(((result.stats.time or 0) - LIMIT) * 1000)
            report[mode] = {
                "cpu_time_overshoot_ms": summary(cpu_over, 2),
                "time_overshoot_ms_measured": summary(time_over, 2),
                "time_overshoot_ms_reported": summary(time_over_reported, 2),
            }
    deaths.stop()
    report["goal_p99_ms"] = 50
    emit(report)


if __name__ == "__main__":
    main()
