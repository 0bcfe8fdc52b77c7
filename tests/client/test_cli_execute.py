"""``kolejka-client execute`` end to end against a real server, a stand-in foreman working the
task through the node API; exit statuses; Ctrl-C with a real signal."""

import json
import os
import pty
import re
import signal
import subprocess
import threading

import pytest

from kolejka.client import TaskState
from kolejka.common import Status

from .conftest import cli_env, make_task
from .live import BIN, wait_for


def in_thread(function, *args, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=function, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


class Running:
    """A ``kolejka-client`` subprocess whose stdout and stderr are collected as they come."""

    def __init__(self, args, env, stdin=None) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "kolejka-client"), *args],
            env=env,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out, self.err = bytearray(), bytearray()
        self.readers = [
            in_thread(self._collect, self.process.stdout, self.out),
            in_thread(self._collect, self.process.stderr, self.err),
        ]

    @staticmethod
    def _collect(stream, into: bytearray) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            into.extend(chunk)

    @property
    def stderr(self) -> str:
        return self.err.decode()

    def key(self) -> str:
        """The task's key, once the status line says it is queued."""
        found = wait_for(lambda: re.search(r"(\S+): queued", self.stderr), "the status line")
        return found.group(1)

    def finish(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code


def test_it_executes_a_task_folder_and_writes_the_result_folder(cli, foreman, task_dir, tmp_path):
    node = in_thread(foreman.run, tmp_path / "node", outputs={"out.txt": b"input\n"})
    done = cli("execute", str(task_dir), str(tmp_path / "result"))
    node.join(timeout=60)
    assert done.returncode == 0, done.stderr
    result_dir = tmp_path / "result"
    assert (result_dir / "out.txt").read_bytes() == b"input\n"
    document = json.loads((result_dir / "kolejka_result.json").read_text())
    assert document["status"] == "OK" and document["files"] == {"out.txt": {"path": "out.txt"}}
    # The live status line, one line per change without a terminal, then the verdict.
    assert re.search(r": queued\n.*: done\n", done.stderr, re.S), done.stderr
    assert re.match(r"t-\S+: OK \(exit 0\), time 0.250s", done.stdout), done.stdout


def test_it_prints_the_outcome_as_json(cli, foreman, task_dir, tmp_path):
    in_thread(foreman.run, tmp_path / "node")
    done = cli("execute", "--json", str(task_dir), str(tmp_path / "result"))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["state"] == "done" and document["result"]["status"] == "OK"
    assert document["result_dir"] == str((tmp_path / "result").resolve())
    assert "queued" not in done.stderr  # no status line for scripts


def test_it_is_silent_with_quiet(cli, foreman, task_dir, tmp_path):
    in_thread(foreman.run, tmp_path / "node")
    done = cli("execute", "--quiet", str(task_dir), str(tmp_path / "result"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "result" / "out.txt").exists()


@pytest.mark.parametrize(
    ("status", "code", "exit_status"),
    [(Status.RUNTIME_ERROR, 1, 1), (Status.TIME_LIMIT, 137, 1), (Status.SYSTEM_ERROR, 0, 3)],
)
def test_it_tells_task_failure_from_platform_failure(
    cli, foreman, task_dir, tmp_path, status, code, exit_status
):
    in_thread(foreman.run, tmp_path / "node", status=status, code=code)
    done = cli("execute", str(task_dir), str(tmp_path / "result"))
    assert done.returncode == exit_status, done.stderr
    assert f": {status} (exit {code})" in done.stdout
    assert json.loads((tmp_path / "result" / "kolejka_result.json").read_text())["status"] == status


def test_it_exits_3_when_the_platform_gives_up_on_the_task(cli, foreman, task_dir, tmp_path):
    def give_up():
        claim = foreman.claim()
        foreman.client.fail(claim.lease, "image kolejka/nothing missing", retry=False)

    in_thread(give_up)
    done = cli("execute", str(task_dir), str(tmp_path / "result"))
    assert done.returncode == 3
    assert "failed: image kolejka/nothing missing" in done.stderr
    assert not (tmp_path / "result").exists()


def test_it_exits_4_when_the_task_is_cancelled_elsewhere(server, home, tag, tmp_path):
    running = Running(
        ["execute", str(make_task(tmp_path / "t", tag)), str(tmp_path / "r")], cli_env(server, home)
    )
    server.client("alice").cancel(running.key())
    assert running.finish() == 4
    assert "cancelled" in running.stderr


def test_it_cancels_on_ctrl_c_with_the_flag(server, home, task_dir, tmp_path):
    args = ["execute", "--cancel-on-interrupt", str(task_dir), str(tmp_path / "r")]
    running = Running(args, cli_env(server, home))
    key = running.key()
    running.process.send_signal(signal.SIGINT)
    assert running.finish() == 4, running.stderr
    assert server.client("alice").task(key).state == TaskState.CANCELLED
    assert f"{key}: cancelled" in running.stderr


@pytest.mark.parametrize(
    ("answer", "exit_status", "state"), [("y", 4, "cancelled"), ("n", 130, "queued")]
)
def test_it_asks_on_ctrl_c_whether_to_cancel(
    server, home, task_dir, tmp_path, answer, exit_status, state
):
    terminal, stdin = pty.openpty()
    running = Running(["execute", str(task_dir), str(tmp_path / "r")], cli_env(server, home), stdin)
    os.close(stdin)
    try:
        key = running.key()
        running.process.send_signal(signal.SIGINT)
        wait_for(lambda: f"Cancel task {key}?" in running.stderr, "the question")
        os.write(terminal, f"{answer}\n".encode())
        assert running.finish() == exit_status, running.stderr
    finally:
        os.close(terminal)
    assert server.client("alice").task(key).state == state
    if answer == "n":
        assert f"kolejka-client result wait {key}" in running.stderr


def test_it_goes_on_waiting_when_told_to_after_ctrl_c(server, home, foreman, task_dir, tmp_path):
    terminal, stdin = pty.openpty()
    running = Running(["execute", str(task_dir), str(tmp_path / "r")], cli_env(server, home), stdin)
    os.close(stdin)
    try:
        key = running.key()
        running.process.send_signal(signal.SIGINT)
        wait_for(lambda: f"Cancel task {key}?" in running.stderr, "the question")
        os.write(terminal, b"c\n")
        foreman.run(tmp_path / "node")
        assert running.finish() == 0, running.stderr
    finally:
        os.close(terminal)
    assert (tmp_path / "r" / "out.txt").exists()


def test_it_leaves_the_task_running_on_ctrl_c_without_a_terminal(server, home, task_dir, tmp_path):
    running = Running(["execute", str(task_dir), str(tmp_path / "r")], cli_env(server, home))
    key = running.key()
    running.process.send_signal(signal.SIGINT)
    assert running.finish() == 130
    assert server.client("alice").task(key).state == TaskState.QUEUED
    assert "no terminal to ask" in running.stderr


def test_it_refuses_an_invalid_task_naming_the_field(cli, tmp_path, tag):
    folder = make_task(tmp_path / "bad", tag, limits={"memory": "64X"})
    done = cli("execute", str(folder), str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"kolejka-client: error: {folder}: limits.memory: unknown size")
    assert done.stderr.count("\n") == 1


def test_it_refuses_a_task_json_that_is_not_json(cli, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "kolejka_task.json").write_text("{not json")
    done = cli("execute", str(tmp_path / "t"), str(tmp_path / "r"))
    assert done.returncode == 2
    assert "kolejka_task.json: is not valid JSON" in done.stderr


def test_it_says_when_the_task_folder_is_missing(cli, tmp_path):
    done = cli("execute", str(tmp_path / "nowhere"), str(tmp_path / "r"))
    assert done.returncode == 2
    assert "is not a directory" in done.stderr and "nowhere" in done.stderr


def test_it_says_when_the_server_cannot_be_reached(cli, task_dir, tmp_path):
    done = cli(
        "execute", "--retries", "1", str(task_dir), str(tmp_path / "r"),
        KOLEJKA_SERVER="http://127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 3
    assert "cannot reach the kolejka server at http://127.0.0.1:9" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
