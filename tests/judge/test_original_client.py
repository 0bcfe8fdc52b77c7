"""The original kolejka client (PyPI ``kolejkaclient``, in its own virtualenv), its CLI and its
Python API, against a real server process through the legacy API, and ``execute`` through a
real foreman: its sign-in, blobs, tasks and results, with our users and what each may see; and
kolejka-judge's own ``judge.py client``, which runs that client, giving the original's verdicts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ..client.live import PASSWORD, live_server, wait_for
from ..foreman.grid import BUSYBOX, Grid
from ..foreman.grid import observer as observer_daemon
from .original import JUDGE_SOLUTIONS, PROBLEM, assert_judged, original_venv


@pytest.fixture(scope="module")
def grid(sandbox, judge_image, tmp_path_factory) -> Iterator[Grid]:
    """One server, observer and foreman for the module (it takes busybox and judge tasks)."""
    root = tmp_path_factory.mktemp("original-client")
    # The callback test's receiver is on loopback, which callbacks reach only where allowed.
    loopback = {"KOLEJKA_NOTIFY_ALLOW": "127.0.0.1"}
    with live_server(root / "server", **loopback) as server, observer_daemon(root) as daemon:
        grid = Grid(server, daemon, root)
        grid.foreman("node-original", "--root-images", "kolejka/judge:*", slots=2)
        try:
            yield grid
        finally:
            grid.close()


def config(grid: Grid, user: str, password: str = PASSWORD) -> Path:
    """A config file of the original client for `user`."""
    path = grid.root / f"kolejka-{user}-{hashlib.sha256(password.encode()).hexdigest()[:8]}.conf"
    path.write_text(
        f"[client]\nserver = {grid.server.url}\nusername = {user}\npassword = {password}\n"
    )
    return path


def client(
    grid: Grid, *args: str, user: str = "alice", password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    """The original ``kolejka-client`` with `args`, signed in as `user`."""
    command = [str(original_venv() / "bin" / "kolejka-client")]
    command += ["--config-file", str(config(grid, user, password)), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def python(grid: Grid, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` run by the original's python (``sys.argv[1:]`` is `args`)."""
    return subprocess.run(
        [str(original_venv() / "bin" / "python"), "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def task_folder(grid: Grid, folder: Path, **fields: object) -> Path:
    """A task of the original's format: ``./run.sh`` writes its input and a greeting."""
    grid.task(folder, ["./run.sh"], files={"run.sh": "run.sh", "in.txt": "in.txt"}, **fields)
    (folder / "run.sh").write_text("#!/bin/sh\ncat in.txt > out.txt\necho done >> out.txt\n")
    (folder / "in.txt").write_text(f"input of {folder.name}\n")
    document = json.loads((folder / "kolejka_task.json").read_text())
    document["collect"] = [{"glob": "out.txt"}]
    (folder / "kolejka_task.json").write_text(json.dumps(document))
    return folder


def test_it_puts_and_gets_blobs_with_the_original_cli(grid, tmp_path):
    content = b"a blob of the original client\n" * 100
    (tmp_path / "blob").write_bytes(content)
    put = client(grid, "blob", "put", str(tmp_path / "blob"))
    assert put.returncode == 0, put.stderr
    key = put.stdout.strip()
    assert key == hashlib.sha256(content).hexdigest()
    again = client(grid, "blob", "put", str(tmp_path / "blob"))
    assert again.returncode == 0 and again.stdout.strip() == key, again.stderr
    got = client(grid, "blob", "get", key, str(tmp_path / "copy"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "copy").read_bytes() == content
    # bob never uploaded it: to him it does not exist.
    refused = client(grid, "blob", "get", key, str(tmp_path / "bobs"), user="bob")
    assert refused.returncode != 0
    assert "KolejkaClientObjectNotFoundError" in refused.stderr


def test_it_refuses_a_wrong_password_as_the_original_did(grid, tmp_path):
    (tmp_path / "blob").write_bytes(b"x")
    refused = client(grid, "blob", "put", str(tmp_path / "blob"), password="wrong")
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert last == "kolejka.client.client.KolejkaClientRemoteError", refused.stderr


def test_it_puts_a_task_and_gets_it_back_with_the_original_cli(grid, tmp_path):
    folder = task_folder(grid, tmp_path / "task", requires=["nowhere"])
    put = client(grid, "task", "put", str(folder))
    assert put.returncode == 0, put.stderr
    key = put.stdout.strip()
    assert grid.client("alice").task(key).state.value == "queued"
    got = client(grid, "task", "get", key, str(tmp_path / "copy"))
    assert got.returncode == 0, got.stderr
    document = json.loads((tmp_path / "copy" / "kolejka_task.json").read_text())
    assert document["id"] == key and document["args"] == ["./run.sh"]
    assert document["image"] == BUSYBOX and document["requires"] == ["nowhere"]
    for name in ("run.sh", "in.txt"):
        assert (tmp_path / "copy" / name).read_bytes() == (folder / name).read_bytes()
    # No result yet: the original answers 404, and so do we.
    pending = client(grid, "result", "get", key, str(tmp_path / "none"))
    assert "KolejkaClientObjectNotFoundError" in pending.stderr
    for command in (["task", "get"], ["result", "get"]):
        refused = client(grid, *command, key, str(tmp_path / "bobs"), user="bob")
        assert refused.returncode != 0
        assert "KolejkaClientObjectNotFoundError" in refused.stderr, refused.stderr
    assert not (tmp_path / "bobs" / "kolejka_task.json").exists()
    # The original client deletes quietly what it is told does not exist: bob's delete is a
    # no-op, alice's deletes her task.
    assert client(grid, "task", "delete", key, user="bob").returncode == 0
    assert grid.client("alice").task(key).state.value == "queued"
    deleted = client(grid, "task", "delete", key)
    assert deleted.returncode == 0, deleted.stderr
    gone = client(grid, "task", "get", key, str(tmp_path / "gone"))
    assert "KolejkaClientObjectNotFoundError" in gone.stderr, gone.stderr


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server recording the JSON bodies POSTed to it."""
    calls: list[dict] = []

    class Record(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/done", calls
    server.shutdown()
    server.server_close()


def test_it_executes_a_task_through_the_grid_with_the_original_cli(grid, tmp_path, listener):
    url, calls = listener
    folder = task_folder(grid, tmp_path / "task", callback_url=url)
    done = client(grid, "execute", "--interval", "0.2", str(folder), str(tmp_path / "result"))
    assert done.returncode == 0, done.stderr + grid.foremen[0].text()
    assert (tmp_path / "result" / "out.txt").read_text() == "input of task\ndone\n"
    result = json.loads((tmp_path / "result" / "kolejka_result.json").read_text())
    key = result["id"]
    assert result["result"] == 0 and set(result["files"]) == {"out.txt"}
    assert grid.client("alice").task(key).state.value == "done"
    got = client(grid, "result", "get", key, str(tmp_path / "again"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "again" / "out.txt").read_text() == "input of task\ndone\n"
    refused = client(grid, "result", "get", key, str(tmp_path / "bobs"), user="bob")
    assert "KolejkaClientObjectNotFoundError" in refused.stderr, refused.stderr
    # The original's callback: the task and its result, in the original's shapes.
    wait_for(lambda: calls, "the callback")
    (call,) = calls
    assert set(call) == {"task", "result"}
    assert call["task"]["id"] == key and call["task"]["callback_url"] == url
    assert call["result"]["id"] == key and call["result"]["result"] == 0


def test_it_serves_the_original_python_api(grid, tmp_path):
    folder = task_folder(grid, tmp_path / "task")
    script = """
        import json, sys, time
        from kolejka.common import kolejka_config, KolejkaTask
        from kolejka.client import KolejkaClient
        from kolejka.client.client import (
            KolejkaClientObjectNotFoundError, KolejkaClientRemoteError)

        alice, bob, wrong, folder, result = sys.argv[1:]
        kolejka_config(config_file=alice)
        client = KolejkaClient()
        seen = {"hash": client.config.blob_hash_algorithm}
        reference = client.blob_put(folder + "/in.txt")
        seen["reference"] = reference["key"]
        seen["checked"] = client.blob_check(blob_reference=reference["key"])
        task = client.task_put(KolejkaTask(folder))
        seen["task"] = task.id
        while True:
            try:
                done = client.result_get(task.id, result)
                break
            except KolejkaClientObjectNotFoundError:
                time.sleep(0.2)
        seen["result"] = done.result
        # The config is read once per process: bob's client is made from his own config.
        from kolejka.common import config as configs
        configs._config = None
        kolejka_config(config_file=bob)
        other = KolejkaClient()
        for name, call in (("bob_task", lambda: other.task_get(task.id, result + "-bob")),
                           ("bob_result", lambda: other.result_get(task.id, result + "-bob")),
                           ("bob_blob", lambda: other.blob_check(blob_reference=reference["key"]))):
            try:
                seen[name] = call()
            except KolejkaClientObjectNotFoundError:
                seen[name] = "not found"
        configs._config = None
        kolejka_config(config_file=wrong)
        try:
            KolejkaClient()
        except KolejkaClientRemoteError:
            seen["wrong"] = "refused"
        print(json.dumps(seen))
    """
    done = python(
        grid,
        script,
        str(config(grid, "alice")),
        str(config(grid, "bob")),
        str(config(grid, "alice", "wrong")),
        str(folder),
        str(tmp_path / "result"),
    )
    assert done.returncode == 0, done.stderr + grid.foremen[0].text()
    seen = json.loads(done.stdout)
    assert seen["hash"] == "sha256" and seen["checked"] is True
    assert seen["reference"] == hashlib.sha256((folder / "in.txt").read_bytes()).hexdigest()
    assert seen["result"] == 0 and seen["task"].startswith("t-")
    assert (tmp_path / "result" / "out.txt").read_text() == "input of task\ndone\n"
    assert seen["bob_task"] == seen["bob_result"] == "not found"
    assert seen["bob_blob"] is False
    assert seen["wrong"] == "refused"


def test_it_judges_with_kolejka_judges_own_client_mode(grid, judge_work, tmp_path):
    """``judge.py client`` writes the task folder and runs the original ``kolejka-client
    execute`` (from ``PATH``, with its config file where the original looks for it)."""
    (tmp_path / "config" / "kolejka").mkdir(parents=True)
    (tmp_path / "config" / "kolejka" / "kolejka.conf").write_text(config(grid, "alice").read_text())
    venv = original_venv()
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }

    def judge(solution: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(str(venv / "bin" / "python"), str(PROBLEM / "judge.py"), "client"),
                *("--library-path", str(judge_work / "kolejka-judge")),
                str(PROBLEM / "tests" / "tests.yaml"),
                str(PROBLEM / "solutions" / solution),
                str(tmp_path / solution),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    with ThreadPoolExecutor(len(JUDGE_SOLUTIONS)) as pool:
        runs = dict(zip(JUDGE_SOLUTIONS, pool.map(judge, JUDGE_SOLUTIONS), strict=True))
    for solution, done in runs.items():
        assert done.returncode == 0, done.stderr + grid.foremen[0].text()
        assert_judged(tmp_path / solution, solution)
