"""A real `kolejka-server serve` process on a free port, with a fresh SQLite data folder and the
test users, and a stand-in foreman that drives tasks through the real API with `KolejkaClient`'s
node calls (there is no foreman daemon yet to run them)."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from kolejka.client import KolejkaClient, TaskInfo
from kolejka.common import Capacity, Result, Status, save_result

BIN = Path(sys.executable).parent
USERS = {"alice": "client", "bob": "client", "carol": "client", "fred": "foreman", "ada": "admin"}
PASSWORD = "correct horse battery staple"


def wait_for(condition: Callable[[], object], what: str, deadline: float = 60) -> object:
    """Poll `condition` until it is true; fail naming `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline} s waiting for {what}")


class LiveServer:
    """A ``kolejka-server serve`` process; `stop()` and `start()` restart it on the same port."""

    def __init__(self, data: Path, env: dict[str, str], tokens: dict[str, str]) -> None:
        self.data = data
        self.env = env
        self.tokens = tokens
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, user: str, **options: object) -> KolejkaClient:
        return KolejkaClient(self.url, token=self.tokens[user], backoff=0.01, **options)  # type: ignore[arg-type]

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        log = self.data / "server.log"
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [str(BIN / "kolejka-server"), "serve", "--bind", f"fd://{sock.fileno()}"],
                env=self.env,
                pass_fds=(sock.fileno(),),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        sock.close()
        self.process = process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the server exited:\n{log.read_text()}")
            try:
                return requests.get(self.url + "/api/v1/auth/me/", timeout=5).status_code == 401
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a busy machine
                return False

        wait_for(up, "the server to answer")

    def stop(self) -> None:
        if self.process is None:
            return
        # SIGTERM: gunicorn's graceful stop (its quick stop can deadlock a threaded worker).
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "kolejka-server"), *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AssertionError(f"kolejka-server {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _server_env(data: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KOLEJKA_")}
    env.pop("DATABASE_URL", None)
    env.update(KOLEJKA_DATA=str(data), KOLEJKA_DB_POOL_SIZE="4", **settings)
    return env


_template: tuple[Path, dict[str, str]] | None = None


def _template_data() -> tuple[Path, dict[str, str]]:
    """A data folder migrated and holding the test users, made once per test run (a dozen
    commands of half a minute in all), and copied for each live server; its tokens."""
    global _template
    if _template is None:
        from ..server.harness import MAKE_USERS

        data = Path(tempfile.mkdtemp(prefix="kolejka-live-template-"))
        atexit.register(shutil.rmtree, data, ignore_errors=True)
        env = _server_env(data)
        manage(env, "migrate", "--no-input")
        made = subprocess.run(
            [str(BIN / "kolejka-server"), "shell", "-c", MAKE_USERS],
            env=env,
            input=json.dumps([USERS, PASSWORD]),
            capture_output=True,
            text=True,
            check=True,
        )
        _template = data, json.loads(made.stdout.strip().splitlines()[-1])
    return _template


@contextmanager
def live_server(data: Path, **settings: str) -> Iterator[LiveServer]:
    template, tokens = _template_data()
    shutil.copytree(template, data, dirs_exist_ok=True)
    env = _server_env(data, **settings)
    server = LiveServer(data, env, tokens)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_tag() -> str:
    """A tag for one test: its tasks require it, so only that test's node can claim them."""
    return f"test-{secrets.token_hex(4)}"


class StandInForeman:
    """Claims the tasks of one test (they require its tag) and reports results, as a foreman
    would, through `KolejkaClient`'s node calls."""

    def __init__(self, server: LiveServer, tag: str, name: str | None = None) -> None:
        self.client = server.client("fred")
        self.name = name or f"node-{tag}"
        self.free = Capacity(cpus=4, memory=8 << 30, workspace=8 << 30)
        self.client.register_node(self.name, self.free, tags=[tag])

    def claim(self, wait: float = 30):
        claim = self.client.claim(self.name, self.free, idle=True, wait=wait)
        assert claim.lease is not None and claim.task is not None, "no task came to the node"
        return claim

    def run(
        self,
        folder: Path,
        *,
        status: Status = Status.OK,
        code: int = 0,
        outputs: dict[str, bytes] | None = None,
        started: Callable[[TaskInfo], None] | None = None,
    ) -> TaskInfo:
        """Claim the next task, mark it running, and post a result with `outputs` as files."""
        claim = self.claim()
        assert claim.lease is not None and claim.task is not None
        self.client.heartbeat(claim.lease, running=True)
        if started is not None:
            started(claim.task)
        outputs = {"out.txt": b"hello from the stand-in\n"} if outputs is None else outputs
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in outputs.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
        result = Result.from_dict(
            {
                "id": claim.task.task.id if claim.task.task else None,
                "result": code,
                "status": str(status),
                "files": {name: {"path": name} for name in outputs},
                "stats": {"time": "0.25s", "memory": {"max_usage": "3M"}},
            }
        )
        save_result(result, folder)
        return self.client.post_result(claim.lease, result, folder)
