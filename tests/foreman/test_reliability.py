"""Faults injected for real into a whole grid: a frozen foreman, a killed observer, a full disk,
GPUs without their runtime, another grid's leftovers, two foremen on one work dir, a poison task.
Figures the issue asks for are printed as ``FIGURE name=value`` (run with ``-s`` to see them)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

import docker
import pytest

from kolejka.client import Node, TaskState
from kolejka.common import Status
from kolejka.worker.run import HOST_PID_LABEL, LABEL, OWNER_LABEL
from kolejka.worker.sessions import owner_tag

from ..client.live import BIN, wait_for
from .grid import BUSYBOX, Executions, Grid, ObserverProcess

BUSY = ["sh", "-c", "while :; do :; done"]


def submit(grid: Grid, tmp_path: Path, name: str, args: list[str], **fields: object) -> str:
    return grid.client().submit(grid.task(tmp_path / name, args, **fields)).key


def node_problems(grid: Grid, name: str) -> list[str]:
    nodes = {node.name: node for node in grid.client("fred").nodes()}
    return nodes[name].problems if name in nodes else []


@pytest.mark.parametrize("accounting", ["observer", "watchdog"])
def test_it_never_runs_two_copies_when_a_foreman_freezes_past_its_lease(
    make_grid, tmp_path, accounting
):
    ttl = 4.0
    grid = make_grid(KOLEJKA_LEASE_TTL="4s", KOLEJKA_RETRY_DELAY="0s")
    executions = Executions(grid, tmp_path / "marks.jsonl")
    # Without an observer the task's deadline is held by the worker's watchdog process.
    alone = ("--observer", "") if accounting == "watchdog" else ()
    try:
        frozen = grid.foreman("node-a", *alone, slots=1)
        key = submit(grid, tmp_path, "t", ["sh", "-c", "sleep 12; echo finished"], stdout="o.txt")
        assert grid.wait_state(key, {TaskState.RUNNING}).node == "node-a"
        wait_for(lambda: executions.read(), "node-a's copy to start")
        ready = grid.foreman("node-b", slots=1)
        ready.wait_log("node healthy")
        frozen.signal(signal.SIGSTOP)  # frozen, not dead: it can neither heartbeat nor kill
        stopped = time.time()
        info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
        wait_for(lambda: time.time() - stopped >= 2 * ttl, "the freeze to last twice the lease")
        frozen.signal(signal.SIGCONT)
        frozen.wait_log("lease lost")  # it learns the lease is gone, and reports nothing
        wait_for(
            lambda: len(executions.read()) == 2 and all(e.end for e in executions.read()),
            "both copies to have ended",
        )
    finally:
        executions.close()
    first, second = executions.read()
    assert first.owner.startswith("node-a:") and second.owner.startswith("node-b:")
    assert first.end is not None and second.end is not None
    overlap = max(0.0, first.end - second.start)
    gap = second.start - first.end
    print(f"FIGURE freeze_overlap_seconds[{accounting}]={overlap:.3f} gap_seconds={gap:.3f}")
    assert overlap == 0, f"two copies ran together for {overlap:.3f} s"
    assert first.end < stopped + ttl, "the frozen node's copy died during the freeze, at its lease"
    assert (info.state, info.node, info.attempts) == (TaskState.DONE, "node-b", 2), info.error
    assert grid.client().result(key).status is Status.OK
    later = grid.client().task(key)
    assert (later.state, later.node, later.attempts) == (TaskState.DONE, "node-b", 2)


def test_it_keeps_a_lease_whose_heartbeats_come_at_nine_tenths_of_it(make_grid, tmp_path):
    grid = make_grid(KOLEJKA_LEASE_TTL="6s")
    late = grid.foreman("node-a", "--heartbeat", "5.4s", slots=1)
    key = submit(grid, tmp_path, "t", ["sh", "-c", "sleep 13; echo finished"], stdout="o.txt")
    assert grid.wait_state(key, {TaskState.RUNNING}).node == "node-a"
    grid.foreman("node-b", slots=1).wait_log("node healthy")  # would take a requeued task
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert (info.state, info.node, info.attempts) == (TaskState.DONE, "node-a", 1), late.text()
    assert grid.client().result(key).status is Status.OK
    assert "lease lost" not in late.text() and "not renewed" not in late.text()


def test_it_stops_a_task_whose_observer_died_and_runs_it_elsewhere(make_grid, tmp_path):
    grid = make_grid(KOLEJKA_RETRY_DELAY="1s")
    lost = grid.observer_process
    executions = Executions(grid, tmp_path / "marks.jsonl")
    second = ObserverProcess(grid.root / "second")
    second.start()
    try:
        broken = grid.foreman("node-a", "--health-interval", "1s", slots=1)
        limits = {"cpu_time": "6s", "time": "60s"}
        key = submit(grid, tmp_path, "busy", BUSY, limits=limits)
        assert grid.wait_state(key, {TaskState.RUNNING}).node == "node-a"
        wait_for(lambda: executions.read(), "the task's container to start")
        grid.foreman("node-b", "--observer", str(second.socket), slots=1).wait_log("node healthy")
        lost.kill()  # its sessions are left as they were: nothing enforces their time limits
        killed = time.time()
        wait_for(lambda: executions.read()[0].end, "node-a's copy to be stopped")
        first = executions.read()[0]
        assert first.end is not None and first.end - killed < 3.0, "stopped within seconds"
        usage = sum(
            int(path.read_text())
            for path in Path("/sys/fs/cgroup/cpuacct", lost.base).glob("*/cpuacct.usage")
        )
        assert usage / 1e9 < 6.0, f"the orphaned copy used {usage / 1e9:.1f} s of CPU"
        wait_for(lambda: node_problems(grid, "node-a"), "node-a to report itself unhealthy")
        assert "observer does not answer" in node_problems(grid, "node-a")[0]
        info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
        assert (info.state, info.node, info.attempts) == (TaskState.DONE, "node-b", 2)
        result = grid.client().result(key)
        assert result.status is Status.CPU_TIME_LIMIT
        assert "a task failed as the node is unhealthy" in broken.text()
    finally:
        executions.close()
        second.stop()


def test_it_claims_again_within_a_health_check_once_its_observer_is_back(make_grid, tmp_path):
    interval = 1.0
    grid = make_grid()
    daemon = grid.observer_process
    node = grid.foreman("node-a", "--health-interval", "1s", slots=1)
    node.wait_log("node healthy")
    daemon.kill()
    wait_for(lambda: node_problems(grid, "node-a"), "node-a to report itself unhealthy")
    key = submit(grid, tmp_path, "t", ["true"])
    reason = grid.client().task(key).reason or ""
    assert "unhealthy" in reason and "observer does not answer" in reason
    daemon.start()  # returns once the observer answers
    back = time.monotonic()
    wait_for(lambda: grid.client().task(key).node == "node-a", "node-a to claim again")
    recovery = time.monotonic() - back
    print(f"FIGURE observer_restart_to_claim_seconds={recovery:.3f} period={interval}")
    assert recovery <= 2 * interval
    assert grid.wait_state(key, {TaskState.DONE, TaskState.FAILED}).state is TaskState.DONE
    assert "platform failures in a row" not in node.text()


def test_it_claims_nothing_while_its_disk_is_full(make_grid, tmp_path):
    grid = make_grid()
    work = tmp_path / "small"
    work.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(work)], check=True)
    try:
        filler = work / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=60"], check=True)
        node = grid.foreman(
            "node-a", "--work-dir", str(work), "--min-free-disk", "8M", "--health-interval", "1s"
        )
        wait_for(lambda: node_problems(grid, "node-a"), "node-a to report a full disk")
        assert "less than 8M (--min-free-disk); make room" in node_problems(grid, "node-a")[0]
        key = submit(grid, tmp_path, "t", ["true"])
        assert "unhealthy" in (grid.client().task(key).reason or "")
        filler.unlink()
        info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
        assert (info.state, info.node) == (TaskState.DONE, "node-a")
        assert node_problems(grid, "node-a") == []
        node.stop()
    finally:
        subprocess.run(["umount", str(work)], check=True)


def test_it_claims_nothing_when_it_offers_gpus_without_their_runtime(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", "--gpus", "1")
    wait_for(lambda: node_problems(grid, "node-a"), "node-a to report the missing runtime")
    assert "nvidia container runtime is not installed" in node_problems(grid, "node-a")[0]
    key = submit(grid, tmp_path, "t", ["true"])
    info = grid.client().task(key)
    assert info.state is TaskState.QUEUED and "unhealthy" in (info.reason or "")


def test_it_closes_the_session_of_a_foreman_killed_mid_task(make_grid, tmp_path):
    grid = make_grid()
    executions = Executions(grid, tmp_path / "marks.jsonl")
    try:
        node = grid.foreman("node-a", slots=1)
        key = submit(grid, tmp_path, "t", ["sleep", "600"])
        grid.wait_state(key, {TaskState.RUNNING})
        wait_for(lambda: executions.read(), "the task to start")
        groups = Path("/sys/fs/cgroup/pids", grid.observer_process.base)
        assert [path for path in groups.iterdir() if path.is_dir()]
        node.signal(signal.SIGKILL)
        node.wait()
        wait_for(lambda: executions.read()[0].end, "the observer to kill the orphaned task")
        wait_for(
            lambda: not [path for path in groups.iterdir() if path.is_dir()],
            "the observer to remove the orphaned session's groups",
        )
        assert grid.observer_process.process is not None
        assert grid.observer_process.process.poll() is None  # no restart was needed
    finally:
        executions.close()
    again = grid.foreman("node-a", "--burst")  # back after a reboot: sweeps what the run left
    assert again.wait() == 0, again.text()
    assert str(grid.root / "node-a") not in Path("/proc/self/mounts").read_text()


def test_it_sweeps_only_what_its_own_identity_left(make_grid, tmp_path):
    grid = make_grid()
    engine = docker.from_env()
    host = socket.gethostname()
    work = grid.root / "node-a"
    dead = f"{host}:4194399"  # above any pid the kernel gives: surely dead
    ours = engine.containers.create(
        BUSYBOX, ["true"], labels={LABEL: "1", HOST_PID_LABEL: dead, OWNER_LABEL: f"node-a:{work}"}
    )
    other = f"node-a:{tmp_path / 'other-grid'}"
    others = [
        # Another grid's foreman on this host, with the same node name and a dead-looking pid
        # (it runs in another pid namespace): not ours.
        {LABEL: "1", HOST_PID_LABEL: dead, OWNER_LABEL: other},
        # A standalone worker's: not a foreman's to sweep.
        {LABEL: "1", HOST_PID_LABEL: dead},
    ]
    kept = [engine.containers.create(BUSYBOX, ["true"], labels=labels) for labels in others]
    cgroups = Path("/sys/fs/cgroup/pids/kolejka")
    mine = cgroups / f"{owner_tag(f'node-a:{work}')}-4194399-abc"
    theirs = cgroups / f"{owner_tag(other)}-4194399-abc"
    for group in (mine, theirs):
        group.mkdir(parents=True)
    try:
        node = grid.foreman("node-a", "--burst")
        assert node.wait() == 0, node.text()
        names = {container.id for container in engine.containers.list(all=True)}
        assert ours.id not in names
        assert {container.id for container in kept} <= names
        assert not mine.exists() and theirs.exists()
    finally:
        for container in kept:
            container.remove(force=True)
        theirs.rmdir()
        with contextlib.suppress(OSError):  # others' groups may be in it
            cgroups.rmdir()


def test_it_refuses_a_second_foreman_on_one_work_dir_or_node_name(make_grid, tmp_path):
    grid = make_grid()
    first = grid.foreman("node-a")
    first.wait_log("node healthy")
    same_dir = grid.foreman("node-z", "--work-dir", str(grid.root / "node-a"))
    assert same_dir.wait() == 4
    assert f"is running on the work dir {grid.root / 'node-a'}" in same_dir.text()
    assert f"pid {first.process.pid}" in same_dir.text()
    same_name = grid.foreman("node-a", "--work-dir", str(tmp_path / "elsewhere"))
    assert same_name.wait() == 4
    assert f"is running on the node 'node-a' of {grid.server.url}" in same_name.text()
    assert first.process.poll() is None


def test_it_burns_no_attempt_on_a_task_no_kernel_accepts(make_grid, tmp_path):
    grid = make_grid()
    folder = grid.task(tmp_path / "poison", ["true"], limits={"pids": 2147483648})
    done = subprocess.run(
        [str(BIN / "kolejka-client"), "task", "put", str(folder)],
        env=grid.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "limits.pids: must be at most 4194304" in done.stderr
    assert "Traceback" not in done.stderr
    tasks = list(grid.client().tasks())
    burned = sum(info.attempts for info in tasks)
    print(f"FIGURE poison_attempts_burned={burned}")
    assert burned == 0 and tasks == []


def test_it_keeps_calling_in_while_unhealthy_so_that_it_is_not_shown_down(make_grid):
    grid = make_grid()
    grid.foreman("node-a", "--gpus", "1", "--health-interval", "1s")
    wait_for(lambda: node_problems(grid, "node-a"), "node-a to report the missing runtime")

    def shown() -> Node:
        return {node.name: node for node in grid.client("alice").nodes()}["node-a"]

    first = shown().last_seen
    assert first is not None
    # It claims nothing while unhealthy: only its health reports say it is alive.
    wait_for(lambda: (shown().last_seen or first) > first, "node-a to report again")
    assert shown().state == "unhealthy"
