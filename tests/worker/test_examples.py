"""The examples of examples/ run to the verdicts their names promise, two at a time (one per core
here; the foreman runs tasks concurrently in threads the same way)."""

from __future__ import annotations

import json
import os
import shutil
import threading

from kolejka.common import Status
from kolejka.worker import Placement, execute

from .helpers import BUSYBOX, DEBIAN, ROOT

EXPECTED = {
    "uname": Status.OK,
    "cpubomb": Status.CPU_TIME_LIMIT,
    "forkbomb": Status.TIME_LIMIT,
    "rambomb": Status.MEMORY_LIMIT,
    "timebomb": Status.TIME_LIMIT,
}


def test_it_runs_every_example_to_its_verdict(clean, tmp_path):
    images = {"kolejka/busybox:latest": BUSYBOX, "kolejka/debian:bookworm": DEBIAN}
    results = {}
    cores = sorted(os.sched_getaffinity(0))

    def one(index: int, name: str) -> None:
        folder = tmp_path / name / "task"
        shutil.copytree(ROOT / "examples" / name, folder)
        spec = json.loads((folder / "kolejka_task.json").read_text())
        spec["image"] = images[spec["image"]]
        (folder / "kolejka_task.json").write_text(json.dumps(spec))
        placement = Placement(cpus=(cores[index % len(cores)],))
        results[name] = execute(
            folder, tmp_path / name / "result", config=clean.config(), placement=placement
        )

    # Two at a time, each on its own core: the memory bomb's last steps are slow work in the
    # kernel (reclaim before the OOM kill) that must not share a core with a busy loop.
    names = list(EXPECTED)
    for first in range(0, len(names), len(cores)):
        batch = [
            threading.Thread(target=one, args=(index, names[index]))
            for index in range(first, min(first + len(cores), len(names)))
        ]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join(timeout=120)
    assert {name: results[name].status for name in EXPECTED} == EXPECTED
    assert (tmp_path / "uname" / "result" / "stdout.txt").read_text() == "Linux\n"
    assert results["forkbomb"].stats.pids.max_usage == 64
    assert results["rambomb"].stats.memory.max_usage == 256 * 2**20
