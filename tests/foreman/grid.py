"""A whole grid on this machine for the tests: a real server process, a real observer, real
foreman processes, and the real client."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kolejka.client import KolejkaClient, TaskInfo, TaskState

from ..client.live import BIN, LiveServer, wait_for

BUSYBOX = "kolejka/busybox:latest"


class ObserverProcess:
    """A ``kolejka-observer`` on its own socket and cgroup base, which a test may kill and
    start again (on the same socket and base, as systemd would)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.socket = root / "observer.sock"
        self.log = root / "observer.log"
        self.base = f"kolejka-test-{secrets.token_hex(4)}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from kolejka.observer.client import ObserverClient, ObserverError

        with open(self.log, "ab") as output:
            process = subprocess.Popen(
                [
                    *(str(BIN / "kolejka-observer"), "--socket", str(self.socket)),
                    *("--cgroup-base", self.base),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.process = process

        def answers() -> bool:
            assert process.poll() is None, self.log.read_text()
            try:
                return bool(ObserverClient(str(self.socket), timeout=2).info())
            except ObserverError:
                return False

        wait_for(answers, "the observer to answer")

    def kill(self) -> None:
        """SIGKILL: the observer dies without closing its sessions."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@contextmanager
def observer(root: Path) -> Iterator[ObserverProcess]:
    """A running `ObserverProcess` under `root`, stopped at the end."""
    daemon = ObserverProcess(root)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


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

    def wait_log(self, text: str, deadline: float = 60) -> None:
        """Wait until the foreman has logged `text`."""
        wait_for(lambda: text in self.text(), f"foreman {self.name} to log {text!r}", deadline)

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

    def __init__(self, server: LiveServer, observer: ObserverProcess, root: Path) -> None:
        self.server = server
        self.observer_process = observer
        self.observer = observer.socket
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
        count = 1
        while log.exists():  # a second foreman of this name keeps a log of its own
            count += 1
            log = self.root / f"{name}-{count}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [
                    *(str(BIN / "kolejka-foreman"), "--name", name, "--work-dir", str(work)),
                    *("--observer", str(self.observer), "--tags", self.tag),
                    *("--slots", str(slots), "--claim-wait", "2s"),
                    *("--lock-dir", str(self.root / "locks"), *args),
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


@dataclass
class Execution:
    """One container of a task, from its start to its death, as dockerd saw it."""

    container: str
    owner: str
    start: float
    end: float | None = None


class Executions:
    """Every start and death of a task container of this grid, from docker's own event stream,
    written to `marks` (a JSON line each) as they come: a record outside every sandbox, which
    no frozen foreman can delay."""

    def __init__(self, grid: Grid, marks: Path) -> None:
        import docker

        from kolejka.worker.run import LABEL

        self.marks = marks
        self.prefix = str(grid.root)
        self._engine = docker.from_env()
        # What reading a stream that `close` cut raises in the recording thread.
        self._closing: tuple[type[BaseException], ...] = (OSError, ValueError, AttributeError)
        self._stream = self._engine.events(
            decode=True, since=int(time.time()) - 1, filters={"type": "container", "label": LABEL}
        )
        self._thread = threading.Thread(target=self._record, daemon=True)
        self._thread.start()

    def _record(self) -> None:
        from kolejka.worker.run import OWNER_LABEL

        with open(self.marks, "a") as marks, contextlib.suppress(*self._closing):
            for event in self._stream:
                owner = (event.get("Actor", {}).get("Attributes") or {}).get(OWNER_LABEL, "")
                if event.get("status") in ("start", "die") and self.prefix in owner:
                    mark = {
                        "container": event["id"],
                        "owner": owner,
                        "event": event["status"],
                        "time": event["timeNano"] / 1e9,
                    }
                    marks.write(json.dumps(mark) + "\n")
                    marks.flush()

    def read(self) -> list[Execution]:
        """The executions recorded so far, by start."""
        found: dict[str, Execution] = {}
        for line in self.marks.read_text().splitlines():
            mark = json.loads(line)
            if mark["event"] == "start":
                found[mark["container"]] = Execution(mark["container"], mark["owner"], mark["time"])
            elif mark["container"] in found:
                found[mark["container"]].end = mark["time"]
        return sorted(found.values(), key=lambda execution: execution.start)

    def close(self) -> None:
        self._stream.close()
        self._engine.close()
