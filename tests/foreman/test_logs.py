"""Logs while running, with real processes: a foreman runs the task in docker and streams its
output to the server; ``kolejka-client task log`` reads it while it runs and after."""

from __future__ import annotations

import select
import subprocess
from pathlib import Path

from kolejka.client import TaskState
from kolejka.common import Status

from ..client.live import BIN, wait_for
from .grid import Grid

# Prints a line, then waits for the file `go` in its working folder, which the test makes.
WAITS = "echo one; while [ ! -e go ]; do sleep 0.05; done; echo two"


def submit(grid: Grid, folder: Path, script: str, **fields: object) -> str:
    task = grid.task(folder, ["sh", "-c", script], stdout="out.txt", stderr="err.txt", **fields)
    return grid.client().submit(task).key


def release(grid: Grid, node: str) -> None:
    """Make the file `go` in the working folder of the task that `node` runs (from the host:
    the workspace is a tmpfs the worker mounted under the foreman's work dir)."""
    folders = list((grid.root / node / "workspaces").glob("kolejka-task-*/task"))
    assert len(folders) == 1, folders
    (folders[0] / "go").touch()


def log(grid: Grid, key: str, *args: str, user: str = "alice") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "kolejka-client"), "task", "log", key, *args],
        env=grid.env(user),
        capture_output=True,
        timeout=120,
    )


def logged(grid: Grid, key: str, wanted: bytes) -> bytes:
    """The task's stdout as the server has it, once it holds `wanted`."""
    client = grid.client()

    def holds() -> bytes | None:
        text = b"".join(part.data for part in client.log(key))
        return text if wanted in text else None

    found = wait_for(holds, f"task {key} to log {wanted!r}", 120)
    assert isinstance(found, bytes)
    return found


def read_line(process: subprocess.Popen[bytes], deadline: float = 120) -> bytes:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], deadline)
    assert ready, "nothing came within the deadline"
    return process.stdout.readline()


def follow(grid, key: str) -> subprocess.Popen[bytes]:
    """``kolejka-client task log KEY -f`` as a process, its output piped."""
    return subprocess.Popen(
        [str(BIN / "kolejka-client"), "task", "log", key, "-f"],
        env=grid.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_it_shows_a_line_in_task_log_f_while_the_task_runs_and_ends_with_it(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path / "t", WAITS)
    follower = follow(grid, key)
    try:
        assert read_line(follower) == b"one\n"
        # The task is still waiting for `go`: the line came while it ran.
        grid.wait_state(key, {TaskState.RUNNING})
        release(grid, "node-a")
        out, err = follower.communicate(timeout=120)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert out == b"two\n"
    assert grid.client().task(key).state is TaskState.DONE
    again = log(grid, key)
    assert (again.returncode, again.stdout) == (0, b"one\ntwo\n")


def test_it_keeps_the_partial_log_of_a_task_cancelled_while_it_runs(make_grid, tmp_path):
    grid = make_grid()
    foreman = grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path / "t", "echo started; echo oops >&2; sleep 600")
    logged(grid, key, b"started\n")
    grid.client().cancel(key)
    foreman.wait_log(f"task {key} cancelled; its result is dropped", 120)
    shown = log(grid, key)
    assert (shown.returncode, shown.stdout) == (0, b"started\n"), shown.stderr
    errors = log(grid, key, "--stderr")
    assert (errors.returncode, errors.stdout) == (0, b"oops\n"), errors.stderr
    assert grid.client().task(key).state is TaskState.CANCELLED


def test_it_keeps_the_log_of_a_task_killed_at_its_time_limit(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path / "t", "echo before; sleep 600", limits={"time": "2s"})
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert info.result is not None and info.result.status is Status.TIME_LIMIT
    shown = log(grid, key)
    assert (shown.returncode, shown.stdout) == (0, b"before\n"), shown.stderr


def test_it_cuts_the_log_at_the_output_cap_and_says_so(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", "--max-output", "1K", slots=1)
    key = submit(grid, tmp_path / "t", "yes 0123456789abcdef | head -c 100000; sleep 600")
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert info.result is not None and info.result.status is Status.OUTPUT_LIMIT
    shown = log(grid, key)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (b"0123456789abcdef\n" * 61)[:1024]
    assert b"reached the output cap" in shown.stderr


def test_it_hides_a_running_task_log_from_another_user(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path / "t", WAITS)
    logged(grid, key, b"one\n")
    refused = log(grid, key, user="bob")
    assert refused.returncode == 2 and refused.stdout == b""
    assert refused.stderr.decode().count("\n") == 1 and "no such task" in refused.stderr.decode()
    release(grid, "node-a")
    grid.wait_state(key, {TaskState.DONE})


def test_it_exits_quietly_on_ctrl_c_while_following(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path / "t", WAITS)
    follower = follow(grid, key)
    try:
        assert read_line(follower) == b"one\n"
        follower.send_signal(2)  # SIGINT, as Ctrl-C
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert (follower.returncode, out, err) == (130, b"", b"")
    grid.wait_state(key, {TaskState.RUNNING})  # it keeps running until `go`
    release(grid, "node-a")
    grid.wait_state(key, {TaskState.DONE})


def test_it_loses_nothing_of_the_result_when_the_server_is_away_while_the_task_prints(
    make_grid, tmp_path
):
    grid = make_grid(KOLEJKA_LEASE_TTL="60s")
    foreman = grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path / "t", WAITS)
    logged(grid, key, b"one\n")
    grid.server.stop()
    release(grid, "node-a")  # "two" is printed while nothing answers the log's sends
    spool = grid.root / "node-a" / "spool"
    wait_for(lambda: any(spool.glob("*/lease.json")), "the result to wait in the spool", 60)
    grid.server.start()
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert info.state is TaskState.DONE, foreman.text()
    shown = log(grid, key)
    assert (shown.returncode, shown.stdout) == (0, b"one\ntwo\n"), shown.stderr
