"""A task's deadline (its node's lease, less a margin): the task dies at it unless it is moved,
at the observer or, without one, by the worker's watchdog process, which also kills the task
when the worker's process dies."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time

from kolejka.common import Status
from kolejka.observer.cgroups import GroupLimits, Hierarchy
from kolejka.worker import Deadline

from .helpers import make_task, wait_for


def test_it_stops_a_task_at_its_deadline(any_run):
    folder = make_task(any_run.folder() / "task", args=["sleep", "60"])
    outcome = any_run.run_folder(folder, deadline=Deadline(time.monotonic() + 1.0))
    assert outcome.status is Status.SYSTEM_ERROR
    assert "stopped at its lease's deadline" in (outcome.result.error or "")
    assert (outcome.result.stats.time or 0) < 5


def test_it_lets_a_task_run_on_while_its_deadline_is_moved(any_run):
    folder = make_task(any_run.folder() / "task", args=["sleep", "3"])
    deadline = Deadline(time.monotonic() + 1.0)
    done = threading.Event()

    def renew() -> None:  # the foreman renewing its lease every 0.3 s
        while not done.wait(0.3):
            deadline.extend(time.monotonic() + 1.0)

    renewer = threading.Thread(target=renew)
    renewer.start()
    try:
        outcome = any_run.run_folder(folder, deadline=deadline)
    finally:
        done.set()
        renewer.join()
    assert outcome.status is Status.OK, outcome.result.to_dict()


def test_its_watchdog_kills_the_task_when_the_worker_process_dies(clean):
    path = f"{clean.cgroup_base}/{secrets.token_hex(4)}"
    group = Hierarchy.discover().group(path)
    group.create(GroupLimits())
    task = subprocess.Popen(["sleep", "60"])
    group.attach(task.pid)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "from kolejka.worker.watchdog import Watchdog\n"
            f"Watchdog({path!r}, time.monotonic() + 3600)\n"
            "print('watched', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "watched\n"
        worker.kill()  # SIGKILL: nobody closes the session
        worker.wait()
        assert task.wait(timeout=10) == -9
    finally:
        wait_for(lambda: not group.processes(), "the group to empty")
        group.remove()
