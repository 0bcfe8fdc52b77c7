import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .live import BIN, LiveServer, StandInForeman, live_server, new_tag


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> LiveServer:
    # Webhooks may go to loopback, where the notification tests' receivers are.
    loopback = {"KOLEJKA_NOTIFY_ALLOW": "127.0.0.1"}
    with live_server(tmp_path_factory.mktemp("kolejka-client-server"), **loopback) as running:
        yield running


@pytest.fixture
def tag() -> str:
    return new_tag()


@pytest.fixture
def foreman(server, tag) -> StandInForeman:
    return StandInForeman(server, tag)


@pytest.fixture
def task_dir(tmp_path, tag) -> Path:
    """A task folder with one input file, which only this test's stand-in foreman can claim."""
    return make_task(tmp_path / "task", tag)


def make_task(folder: Path, tag: str, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in.txt").write_text("input\n")
    document = {
        "id": folder.name,
        "image": "kolejka/busybox:latest",
        "args": ["cat", "in.txt"],
        "requires": [tag],
        "files": {"in.txt": "in.txt"},
        "stdout": "out.txt",
        **fields,
    }
    (folder / "kolejka_task.json").write_text(json.dumps(document))
    return folder


@pytest.fixture
def home(tmp_path) -> Path:
    """An empty configuration folder: the tests never read the machine's own."""
    path = tmp_path / "config"
    path.mkdir()
    return path


def cli_env(server: LiveServer, home: Path, user: str | None = "alice", **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KOLEJKA_")}
    env["XDG_CONFIG_HOME"] = str(home)
    env["KOLEJKA_SERVER"] = server.url
    if user is not None:
        env["KOLEJKA_TOKEN"] = server.tokens[user]
    env.update(extra)
    return env


@pytest.fixture
def cli(server, home):
    """Run ``kolejka-client ARGS`` as alice (or `user`) against the live server."""

    def run(*args: str, user: str | None = "alice", input: str | None = None, **env: str):
        return subprocess.run(
            [str(BIN / "kolejka-client"), *args],
            env=cli_env(server, home, user, **env),
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.fixture
def python():
    return sys.executable
