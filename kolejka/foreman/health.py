"""The node's own health check, run before it claims and every `interval` while it runs.

A node that cannot run tasks must not take them: each would fail, and a task that fails on the
node that is broken burns an attempt. So the foreman checks what every task needs (docker
answers; the observer answers, when it uses one; the nvidia container runtime is installed, when
it offers GPUs; the work dir has room), claims only while none fails, reports every change to the
server (which gives an unhealthy node nothing, also from a claim already waiting there) and
claims again as soon as the check passes.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kolejka.common.units import format_memory

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
NVIDIA_HOOK = "nvidia-container-runtime-hook"


@dataclass(frozen=True)
class Checks:
    """What the check looks at. `docker_url` and `observer` as the worker's."""

    docker_url: str
    observer: str | None
    gpus: int
    work_dir: Path
    min_free: int


def _docker(url: str) -> Any:
    import docker

    return docker.APIClient(base_url=url, version="auto", timeout=PROBE_TIMEOUT)


def check(checks: Checks) -> list[str]:
    """The problems found, each one line saying what to do; empty when healthy."""
    problems: list[str] = []
    runtimes: dict[str, Any] | None = None
    try:
        api = _docker(checks.docker_url)
        try:
            api.ping()
            runtimes = (api.info().get("Runtimes") or {}) if checks.gpus else {}
        finally:
            api.close()
    except Exception as error:  # whatever the engine or its client raises, it is not usable
        problems.append(f"docker does not answer at {checks.docker_url}: {error}")
    if checks.observer:
        from kolejka.observer.client import ObserverClient, ObserverError

        try:
            ObserverClient(checks.observer, timeout=PROBE_TIMEOUT).info()
        except ObserverError as error:
            problems.append(f"the observer does not answer ({error}); start kolejka-observer")
    gpus = checks.gpus and runtimes is not None
    if gpus and "nvidia" not in (runtimes or {}) and shutil.which(NVIDIA_HOOK) is None:
        problems.append(
            f"the node offers {checks.gpus} GPUs but the nvidia container runtime is not "
            f"installed (no 'nvidia' runtime in docker, no {NVIDIA_HOOK}); install "
            "nvidia-container-toolkit"
        )
    try:
        stat = os.statvfs(checks.work_dir)
        free = stat.f_bavail * stat.f_frsize
        if free < checks.min_free:
            problems.append(
                f"the work dir {checks.work_dir} has {format_memory(free)} free, less than "
                f"{format_memory(checks.min_free)} (--min-free-disk); make room"
            )
    except OSError as error:
        problems.append(f"the work dir {checks.work_dir} cannot be read: {error.strerror}")
    return problems


class Monitor:
    """Runs `check` every `interval` in a thread and gives each outcome to `on_check(problems)`
    (which reports it to the server until the server has it). The first check runs in `start`,
    so the node knows its health before its first claim."""

    def __init__(
        self,
        checks: Checks,
        interval: float,
        on_check: Callable[[list[str]], None],
    ) -> None:
        self.checks = checks
        self.interval = interval
        self._on_check = on_check
        self._lock = threading.Lock()
        self._problems: list[str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    @property
    def problems(self) -> list[str]:
        with self._lock:
            return list(self._problems or [])

    def start(self) -> None:
        self.check_now()
        self._thread.start()

    def check_now(self) -> list[str]:
        """Check at once (after a platform failure: was it the node?); return the problems."""
        problems = check(self.checks)
        with self._lock:
            changed, self._problems = problems != self._problems, problems
        if changed:
            if problems:
                log.error("node unhealthy, not claiming: %s", "; ".join(problems))
            else:
                log.info("node healthy")
        self._on_check(problems)
        return problems

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_now()
            except Exception:  # the check itself broke: say so and keep checking
                log.exception("the health check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
