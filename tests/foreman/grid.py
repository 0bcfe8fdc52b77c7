"""A whole grid on this machine for the tests: a real server process, a real observer, real
foreman processes, and the real client."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kolejka.client import KolejkaClient, TaskInfo, TaskState

from ..client.live import BIN, LiveServer, wait_for

BUSYBOX = "kolejka/busybox:latest"


@contextmanager
def observer(root: Path) -> Iterator[Path]:
    """A ``kolejka-observer`` on its own socket and cgroup base; yields the socket."""
    socket = root / "observer.sock"
    log = root / "observer.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                *(str(BIN / "kolejka-observer"), "--socket", str(socket)),
                *("--cgroup-base", f"kolejka-test-{secrets.token_hex(4)}"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: socket.exists() or process.poll() is not None, "the observer's socket")
        assert process.poll() is None, log.read_text()
        yield socket
    finally:
        process.terminate()
        process.wait(timeout=60)


class ForemanProcess:
    """A ``kolejka-foreman`` process and its log."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"foreman {self.name} did not exit:\n{self.text()}") from None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Grid:
    """A server, an observer and the foremen a test starts; tasks of the test require `tag`."""

    def __init__(self, server: LiveServer, observer_socket: Path, root: Path) -> None:
        self.server = server
        self.observer = observer_socket
        self.root = root
        self.tag = f"grid-{secrets.token_hex(4)}"
        self.foremen: list[ForemanProcess] = []

    def client(self, user: str = "alice") -> KolejkaClient:
        return self.server.client(user)

    def env(self, user: str = "alice") -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KOLEJKA_")}
        env.update(
            KOLEJKA_SERVER=self.server.url,
            KOLEJKA_TOKEN=self.server.tokens[user],
            XDG_CONFIG_HOME=str(self.root / "config"),
        )
        return env

    def foreman(self, name: str, *args: str, slots: int = 2, **env: str) -> ForemanProcess:
        """Start a foreman for this grid's tasks; `args` are extra flags."""
        work = self.root / name
        log = self.root / f"{name}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [
                    *(str(BIN / "kolejka-foreman"), "--name", name, "--work-dir", str(work)),
                    *("--observer", str(self.observer), "--tags", self.tag),
                    *("--slots", str(slots), "--claim-wait", "2s", *args),
                ],
                env={**self.env("fred"), **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        foreman = ForemanProcess(name, process, log)
        self.foremen.append(foreman)
        return foreman

    def task(self, folder: Path, args: list[str], **fields: object) -> Path:
        """A task folder for this grid (it requires the grid's tag)."""
        folder.mkdir(parents=True, exist_ok=True)
        document = {"image": BUSYBOX, "args": args, "requires": [self.tag], **fields}
        (folder / "kolejka_task.json").write_text(json.dumps(document))
        return folder

    def wait_state(
        self, key: str, states: set[TaskState], deadline: float = 120, user: str = "alice"
    ) -> TaskInfo:
        client = self.client(user)
        info = wait_for(
            lambda: (lambda i: i if i.state in states else None)(client.task(key)),
            f"task {key} to reach {sorted(states)}",
            deadline,
        )
        assert isinstance(info, TaskInfo)
        return info

    def close(self) -> None:
        for foreman in self.foremen:
            foreman.stop()
