"""``kolejka-worker execute``: its exit codes, messages, options, and interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kolejka.common import Status, load_result

from .helpers import Sandbox, containers_of_pid, make_task, process_exists, wait_for


def worker(
    sandbox: Sandbox, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    environment = dict(os.environ)
    environment.update(
        KOLEJKA_WORKER_CGROUP_BASE=sandbox.cgroup_base,
        KOLEJKA_WORKER_TEMP_DIR=str(sandbox.temp_dir),
    )
    environment.update(env or {})
    command = [sys.executable, "-m", "kolejka.worker.cli", "execute", *map(str, args)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_it_exits_0_with_the_task_s_verdict(clean, tmp_path):
    task = make_task(tmp_path / "task", args=["sh", "-c", "exit 3"])
    code, out, err = finish(worker(clean, task, tmp_path / "result"))
    assert (code, out, err) == (0, "", "")
    result = load_result(tmp_path / "result")
    assert (result.status, result.result) == (Status.RUNTIME_ERROR, 3)


def test_it_runs_a_task_asking_more_cpus_than_the_machine_has_on_all_its_cores(clean, tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    task = make_task(
        tmp_path / "task",
        args=["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
        stdout="out.txt",
        limits={"cpus": 64},
    )
    code, _, err = finish(worker(clean, task, tmp_path / "result"))
    assert code == 0, err
    result = load_result(tmp_path / "result")
    assert result.status is Status.OK, result.error
    # The original ran it on the cores there were; the result says how many it got.
    assert result.limits.cpus == len(cores)
    listed = (tmp_path / "result" / "out.txt").read_text().split()[1]
    allowed = [
        core
        for part in listed.split(",")
        for core in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)
    ]
    assert allowed == cores


def test_it_exits_2_for_an_invalid_task_and_writes_nothing(clean, tmp_path):
    task = make_task(tmp_path / "task", args=["true"], limits={"pids": 0})
    code, out, err = finish(worker(clean, task, tmp_path / "result"))
    assert (code, out) == (2, "")
    assert err == "kolejka-worker: invalid task: limits.pids: must be at least 1 (got 0)\n"
    assert not (tmp_path / "result").exists()


def test_it_exits_2_for_a_bad_option(clean, tmp_path):
    task = make_task(tmp_path / "task", args=["true"])
    code, _, err = finish(worker(clean, task, tmp_path / "result", "--max-output", "lots"))
    assert code == 2
    assert "--max-output" in err


def test_it_exits_1_with_a_system_error_result_when_the_image_is_missing(clean, tmp_path):
    task = make_task(tmp_path / "task", image="kolejka/missing:0", args=["true"])
    code, _, err = finish(worker(clean, task, tmp_path / "result"))
    assert code == 1
    assert err.startswith("kolejka-worker: system error: image kolejka/missing:0 is not on this")
    assert load_result(tmp_path / "result").status is Status.SYSTEM_ERROR


def test_it_prints_the_result_and_takes_options_from_the_environment(clean, tmp_path):
    task = make_task(tmp_path / "task", args=["true"])
    env = {"KOLEJKA_WORKER_DEFAULTS": '{"time": "7s"}', "KOLEJKA_WORKER_TAGS": "cpu,fast"}
    code, out, _ = finish(worker(clean, task, tmp_path / "result", "--json", env=env))
    assert code == 0
    printed = json.loads(out)
    assert printed == json.loads((tmp_path / "result" / "kolejka_result.json").read_text())
    assert printed["limits"]["time"] == "7s"
    assert printed["tags"] == ["cpu", "fast"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_it_leaves_nothing_behind_when_interrupted(clean, tmp_path, signum):
    task = make_task(tmp_path / "task", args=["sleep", "876543"], limits={"time": "60s"})
    process = worker(clean, task, tmp_path / "result")
    wait_for(lambda: process_exists("sleep 876543"), "the task to run")
    assert containers_of_pid(process.pid)
    process.send_signal(signum)
    code, _, _ = finish(process)
    assert code == 128 + signum
    result = load_result(tmp_path / "result")
    assert (result.status, result.error) == (Status.SYSTEM_ERROR, "cancelled")
    assert not process_exists("sleep 876543")
    assert not containers_of_pid(process.pid)


def test_it_sweeps_what_a_killed_worker_left(clean, tmp_path):
    from kolejka.worker import sweep

    task = make_task(tmp_path / "task", args=["sleep", "876540"], limits={"time": "60s"})
    process = worker(clean, task, tmp_path / "result")
    wait_for(lambda: process_exists("sleep 876540"), "the task to run")
    process.kill()  # no chance to clean up
    process.communicate(timeout=30)
    left = clean.leftovers()
    assert left["mounts"] and left["cgroups"] and containers_of_pid(process.pid)
    removed = sweep(clean.config())
    assert sorted(item.split()[0] for item in removed) == ["cgroup", "container", "workspace"]
    assert not process_exists("sleep 876540")
    assert not containers_of_pid(process.pid)
