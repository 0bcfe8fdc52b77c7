"""Shared by the worker and observer tests: task folders, runs, and proof that nothing is left.

Everything a test run makes is named with a per-run id (cgroup base, temp dir, container label),
so tests of other engineers on the same machine are never touched or counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kolejka.common import Result, Status, load_result
from kolejka.worker import WorkerConfig, execute

RUN_ID = secrets.token_hex(4)
# Tests run tags of their own: other engineers' test runs on this machine rebuild the shared
# tags from their branches' recipes, and must not swap an image under a running test.
BUSYBOX = f"kolejka/busybox:test-{RUN_ID}"
DEBIAN = f"kolejka/debian:test-{RUN_ID}"
LABEL = "org.kolejka.test"
ROOT = Path(__file__).resolve().parents[2]


def has_probe(image: str) -> bool:
    """Whether `image` is this branch's busybox, with kolejka-probe in it."""
    probe = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "kolejka-probe"],
        capture_output=True,
        text=True,
    )
    return "crash" in probe.stderr


@contextlib.contextmanager
def test_images() -> Iterator[None]:
    """Tag this branch's images for this run (rebuilding them if another branch's recipe has
    replaced them), and remove the tags afterwards."""
    for _ in range(3):
        if not has_probe("kolejka/busybox:latest"):
            subprocess.run([str(ROOT / "images" / "build")], check=True)
        subprocess.run(["docker", "tag", "kolejka/busybox:latest", BUSYBOX], check=True)
        subprocess.run(["docker", "tag", "kolejka/debian:bookworm", DEBIAN], check=True)
        if has_probe(BUSYBOX):
            break
    else:
        raise AssertionError("kolejka/busybox:latest keeps lacking kolejka-probe; run images/build")
    try:
        yield
    finally:
        subprocess.run(["docker", "rmi", BUSYBOX, DEBIAN], capture_output=True, check=False)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `condition` until it returns something true; fail saying `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Sandbox:
    """One test run's names: its cgroup base, temp dir and container label."""

    temp_dir: Path
    run_id: str = RUN_ID

    @property
    def cgroup_base(self) -> str:
        return f"kolejka-test-{self.run_id}"

    def config(self, **changes: Any) -> WorkerConfig:
        fields: dict[str, Any] = {
            "cgroup_base": self.cgroup_base,
            "temp_dir": self.temp_dir,
            "labels": ((LABEL, self.run_id),),
        }
        fields.update(changes)
        return WorkerConfig(**fields)

    def containers(self) -> list[str]:
        return _containers(f"label={LABEL}={self.run_id}")

    def leftovers(self) -> dict[str, list[str]]:
        """What this run left behind: containers, cgroups, mounts, temp dirs."""
        groups = [
            str(path)
            for path in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_base}*/*")
            if path.is_dir()
        ]
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(self.temp_dir))
        ]
        return {
            "containers": self.containers(),
            "cgroups": groups,
            "mounts": mounts,
            "temp dirs": sorted(p.name for p in self.temp_dir.glob("kolejka-task-*")),
        }

    def remove_bases(self) -> None:
        """Remove this run's base groups (``kolejka-test-ID*``), empty by now, everywhere."""
        from kolejka.observer.cgroups import Hierarchy, remove_tree

        hierarchy = Hierarchy.discover()
        for root in sorted(set(hierarchy.mounts.values()) | set(hierarchy.extra)):
            for base in root.glob(f"{self.cgroup_base}*"):
                remove_tree(base, time.monotonic() + 5)

    def assert_clean(self) -> None:
        left = {kind: items for kind, items in self.leftovers().items() if items}
        assert not left, f"left behind: {left}"


def _containers(*filters: str) -> list[str]:
    command = ["docker", "ps", "-aq", "--no-trunc"] + [f"--filter={item}" for item in filters]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()


def containers_of_pid(pid: int) -> list[str]:
    return _containers(f"label=org.kolejka.host-pid={socket.gethostname()}:{pid}")


def make_task(folder: Path, files: dict[str, str | bytes] | None = None, **task: Any) -> Path:
    """Write a task folder: `kolejka_task.json` from `task` (image defaults to busybox) and
    `files` (each also listed in the task's ``files``)."""
    folder.mkdir(parents=True, exist_ok=True)
    task.setdefault("image", BUSYBOX)
    for name, content in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        if name.endswith(".sh"):
            path.chmod(0o755)
        task.setdefault("files", {})[name] = {"path": name}
    (folder / "kolejka_task.json").write_text(json.dumps(task))
    return folder


class Runner:
    """Runs task folders under `tmp` with a config and reads what they wrote."""

    def __init__(self, tmp: Path, config: WorkerConfig) -> None:
        self.tmp = tmp
        self.config = config
        self.count = 0

    def folder(self) -> Path:
        self.count += 1
        return self.tmp / f"run{self.count}"

    def __call__(self, files: dict[str, str | bytes] | None = None, **task: Any) -> Outcome:
        return self.run_folder(make_task(self.folder() / "task", files, **task))

    def run_folder(self, task_dir: Path, **kwargs: Any) -> Outcome:
        result_dir = task_dir.parent / "result"
        result = execute(task_dir, result_dir, config=self.config, **kwargs)
        assert load_result(result_dir).to_dict() == result.to_dict()
        return Outcome(result, result_dir)

    def assert_still_works(self) -> None:
        """A normal task right after a hostile one behaves normally."""
        outcome = self(
            args=["sh", "-c", "echo hello; kolejka-probe mem 8"],
            stdout="out.txt",
            limits={"time": "20s", "memory": "64M", "pids": 16},
        )
        assert outcome.result.status is Status.OK, outcome.result.to_dict()
        assert outcome.text("out.txt") == "hello\ntouched 8 MiB\n"
        assert 8 * 2**20 <= (outcome.result.stats.memory.max_usage or 0) < 16 * 2**20


@dataclass
class Outcome:
    result: Result
    folder: Path

    def text(self, name: str) -> str:
        return (self.folder / name).read_text()

    @property
    def status(self) -> Status | None:
        return self.result.status


@contextlib.contextmanager
def start_observer(
    socket_path: Path, cgroup_base: str, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``kolejka-observer`` until the generator is closed; yield it once it answers."""
    from kolejka.observer.client import ObserverClient, ObserverError

    command = [sys.executable, "-m", "kolejka.observer.cli", "--socket", str(socket_path)]
    process = subprocess.Popen(
        [*command, "--cgroup-base", cgroup_base, *extra], stderr=subprocess.PIPE
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the observer exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            return bool(ObserverClient(str(socket_path), timeout=2).info())
        except ObserverError:
            return False

    wait_for(answers, "the observer to answer")
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def process_exists(needle: str) -> bool:
    """Whether a process whose command line contains `needle` runs anywhere on the host."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if needle.encode() in cmdline:
            return True
    return False
