"""The foreman's main loop: register, then claim what fits the free part of the node (as many
tasks as slots are free, one claim at a time; a task's result asks for the next ones), and run
each task in its own thread, until told to stop. It claims only while its
health check passes (`health.Monitor`), and again as soon as it passes after a failure.

Stopping is warm, then cold (as rq's workers): the first `stop()` ends claiming and lets running
tasks finish within the grace period, then hands the rest back to the server; `stop(now=True)`
hands everything back at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker

from kolejka.client import ClientError, KolejkaClient, Lease, TaskInfo
from kolejka.common import Demand
from kolejka.worker import Deadline

from .blobcache import BlobCache
from .config import ForemanConfig
from .health import Checks, Monitor
from .images import ImageCache
from .ledger import Ledger
from .spool import Spool
from .taskrun import Runner, TaskRun, Toolkit, execute, upload

log = logging.getLogger(__name__)

# After this many platform failures in a row that its health check does not explain, the node
# stops claiming for a while, doubling the pause each time, so that a node broken in a way the
# check cannot see does not eat the queue. Failures the check explains (the observer is down)
# do not count: the node claims again as soon as the check passes.
PAUSE_FIRST, PAUSE_MAX = 30.0, 1800.0
RECONNECT_MAX = 30.0
TRIM_EVERY = 30.0


class Foreman:
    """A node daemon. `run()` returns the number of tasks it ran."""

    def __init__(
        self,
        config: ForemanConfig,
        connect: Callable[[], KolejkaClient],
        runner: Runner,
        engine: docker.DockerClient,
        checks: Checks,
    ) -> None:
        self.config = config
        self.connect = connect
        self.client = connect()
        blobs = BlobCache(config.work_dir / "blobs", config.blob_cache)
        cores = sorted(os.sched_getaffinity(0))
        self.ledger = Ledger(config.capacity, config.tags, cores, list(range(config.capacity.gpus)))
        self.spool = Spool(config.work_dir / "spool")
        self.kit = Toolkit(
            connect=connect,
            runner=runner,
            blobs=blobs,
            images=ImageCache(
                engine, config.work_dir / "images.json", config.image_cache, self._tarball
            ),
            spool=self.spool,
            tasks_dir=config.work_dir / "tasks",
            on_outcome=self._outcome,
            heartbeat=config.heartbeat,
            max_output=config.max_output,
            next_tasks=self._next_in_answer,
        )
        self.running: dict[str, tuple[TaskRun, threading.Thread]] = {}
        self.removing: list[str] = []  # the images of ended tasks whose containers remain
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.started = 0
        self.failures = 0
        self.paused_until = 0.0
        self.trimmed = 0.0
        self.health = Monitor(checks, config.health_interval, self._checked)
        self.problems: list[str] = []  # what keeps the node from claiming; [] when healthy
        self.reported: list[str] | None = None  # what the server last heard of it
        self.health_client = connect()  # health reports have a client of their own
        self.reporting = threading.Lock()  # one health report at a time

    def _tarball(self, image: str) -> Path | None:
        """The ``docker save`` tarball the server stores for `image`, through the blob cache."""
        client = self.connect()
        try:
            stored = client.images(image)
            if not stored:
                return None
            return self.kit.blobs.get(stored[0].reference, client.get_blob)
        finally:
            client.close()

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming; with `now`, also hand every running task back at once."""
        self.stopping.set()
        if now:
            with self.changed:
                runs = [run for run, _ in self.running.values()]
            for run in runs:
                run.stop("handed back")
        with self.changed:
            self.changed.notify_all()

    def _checked(self, problems: list[str]) -> None:
        """After each health check: note what keeps the node from claiming, and tell the server
        until it has heard."""
        with self.reporting:
            self._report(problems)

    def _report(self, problems: list[str]) -> None:
        with self.changed:
            pause = self.paused_until - time.monotonic()
            if pause > 0:
                problems = [
                    *problems,
                    f"paused for {pause:.0f} s after {self.failures} platform failures in a row "
                    "that the health check does not explain",
                ]
            self.problems = problems
            self.changed.notify_all()
            # An unhealthy node claims nothing, so its reports are what tells the server it is
            # alive (not down): they go at each check; a healthy node's claims do that.
            if problems == self.reported and not problems:
                return
        try:
            self.health_client.report_health(self.config.name, problems)
        except ClientError as error:
            log.warning("cannot report the node's health: %s; trying again", error)
            return
        with self.changed:
            self.reported = problems

    def _outcome(self, ok: bool) -> None:
        if not ok:
            explained = self.health.check_now()
            if explained:
                log.warning("a task failed as the node is unhealthy: %s", "; ".join(explained))
                return
        with self.changed:
            if ok:
                self.failures = 0
                return
            self.failures += 1
            if self.failures >= self.config.failure_limit:
                pause = min(
                    PAUSE_FIRST * 2 ** (self.failures - self.config.failure_limit), PAUSE_MAX
                )
                self.paused_until = time.monotonic() + pause
                log.error(
                    "%d platform failures in a row: not claiming for %.0f s", self.failures, pause
                )
        self._checked(self.health.problems)

    def prepare(self) -> None:
        """Clear what a previous run left (task folders), register, send spooled results."""
        shutil.rmtree(self.kit.tasks_dir, ignore_errors=True)
        self.kit.tasks_dir.mkdir(parents=True)
        self.client.register_node(
            self.config.name,
            self.config.capacity,
            tags=sorted(self.config.tags),
            defaults=self.config.defaults,
            slots=self.config.slots,
        )
        self.health.start()
        self.flush_spool()

    def flush_spool(self) -> None:
        """Send the results a task thread could not (the server was away), oldest first."""
        with self.changed:
            mine = set(self.running)
        for spooled in self.spool.pending():
            # A running task's thread sends its own result; only orphans are ours to send.
            if spooled.lease_id not in mine and upload(self.client, self.spool, spooled) is None:
                return

    def _room(self) -> bool:
        free = self.ledger.free()
        return len(self.running) < self.config.slots and free.cpus > 0

    def _slots_to_fill(self, ending: int = 0) -> int:
        """Tasks one claim may take: the free slots (with the `ending` tasks' own), within
        what `max_tasks` leaves."""
        with self.changed:
            count = self.config.slots - len(self.running) + ending
            if self.config.max_tasks is not None:
                count = min(count, self.config.max_tasks - self.started)
        return count

    def _next_in_answer(self) -> int:
        """How many next tasks a task's thread asks for with its result: as many as the slots
        free once it ends, while the node claims at all."""
        with self.changed:
            claiming = not self.stopping.is_set() and not self.problems
            claiming = claiming and self.paused_until <= time.monotonic()
        return max(self._slots_to_fill(ending=1), 0) if claiming else 0

    def _wait_for_room(self) -> bool:
        """Wait until a slot is free, the node healthy and claiming allowed; `False` once
        stopping. The health monitor wakes it after every check."""
        with self.changed:
            while not self.stopping.is_set():
                pause = self.paused_until - time.monotonic()
                if pause <= 0 and not self.problems and self._room():
                    return True
                self.changed.wait(timeout=max(pause, 0) or None)
        return False

    def run(self) -> int:
        """Claim and run tasks until stopped (or, in burst mode, until none is left)."""
        self.prepare()
        backoff, draining = 1.0, False
        while self._wait_for_room():
            if self.config.max_tasks is not None and self.started >= self.config.max_tasks:
                break
            try:
                claim = self.client.claim(
                    self.config.name,
                    self.ledger.free(),
                    idle=self.ledger.idle,
                    wait=0 if self.config.burst else self.config.claim_wait,
                    count=max(self._slots_to_fill(), 1),
                )
            except ClientError as error:
                log.warning("claim failed: %s; retrying in %.0f s", error, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
                continue
            backoff = 1.0
            if claim.drain != draining:
                draining = claim.drain
                log.info("node %s %s", self.config.name, "drains" if draining else "claims again")
            if self.spool.pending():
                self.flush_spool()
            if claim.claimed:
                # The leases began during the long-poll, so their ends are counted from the
                # answer: late by the answer's way back (milliseconds), which the margin on the
                # server's side covers. The server fitted them together in the free part sent.
                began = time.monotonic()
                for lease, task in claim.claimed:
                    self._start(self.client, lease, task, began)
            elif self.config.burst and not self.running:
                break
            elif self.config.burst or draining:
                # Nothing to take now: wait for a task of ours to end (or, draining and idle,
                # for one claim period) before asking again.
                self._wait_for_change(self.config.claim_wait)
        self._shutdown()
        return self.started

    def _wait_for_change(self, timeout: float) -> None:
        with self.changed:
            count = len(self.running)
            self.changed.wait_for(
                lambda: len(self.running) != count or self.stopping.is_set(), timeout=timeout
            )

    def _start(self, client: KolejkaClient, lease: Lease, info: TaskInfo, began: float) -> None:
        """Run the claimed task `info` under `lease` (which began at `began`) in a thread of its
        own; `client` is the calling thread's."""
        if info.task is None:
            client.fail(lease, "the claim carried no task", retry=True)
            return
        if self.stopping.is_set():
            client.release(lease)  # claimed in a result's answer as the foreman stopped
            return
        demand = Demand.of(info.task, self.config.defaults).clamped(self.config.capacity.cpus)
        placement = self.ledger.reserve(demand)
        if placement is None:
            # The server placed it by the same rule on the capacity we sent; only a race with
            # our own books can land here. Hand it back rather than overcommit.
            log.error("task %s does not fit after all; handing it back", info.key)
            client.release(lease)
            return
        deadline = Deadline(began + (lease.ttl or 30.0) - lease.margin)
        run = TaskRun(lease, info, demand, placement, deadline)
        thread = threading.Thread(target=self._work, args=(run,), name=f"task-{info.key}")
        with self.changed:
            self.started += 1
            self.running[lease.id] = (run, thread)
        log.info("running task %s on cores %s", info.key, placement.cpus)
        thread.start()

    def _work(self, run: TaskRun) -> None:
        later = contextlib.ExitStack()
        image = run.info.task.image if run.info.task else ""
        try:
            execute(run, self.kit, later)
        finally:
            self.ledger.release(run.demand, run.placement)
            with self.changed:
                self.running.pop(run.lease.id, None)
                self.removing.append(image)  # its dead container still holds the image
                # The next tasks that came with the result's answer start in the slot (and on
                # the cores) this task just left, in the same step, so that the node is never
                # seen running nothing meanwhile (a burst would end).
                if run.claimed:
                    client = self.connect()
                    try:
                        for lease, info in run.claimed:
                            self._start(client, lease, info, run.claimed_at)
                    finally:
                        client.close()
                self.changed.notify_all()
            # The slot is free and the next claim on its way: now remove the dead container.
            # One that cannot be removed is swept when the foreman starts again.
            try:
                later.close()
            except Exception:
                log.exception("task %s: cannot remove its container", run.info.key)
            with self.changed:
                self.removing.remove(image)
                in_use = {r.info.task.image for r, _ in self.running.values() if r.info.task}
                in_use.update(self.removing)
            self._trim(in_use)

    def _trim(self, in_use: set[str]) -> None:
        """Keep the caches within their budgets; at most every `TRIM_EVERY` seconds."""
        now = time.monotonic()
        if now - self.trimmed < TRIM_EVERY:
            return
        self.trimmed = now
        self.kit.blobs.trim()
        self.kit.images.trim(in_use)

    def _shutdown(self) -> None:
        """Let running tasks finish within the grace period, then hand the rest back."""
        deadline = time.monotonic() + self.config.grace
        with self.changed:
            while self.running and time.monotonic() < deadline:
                self.changed.wait(timeout=deadline - time.monotonic())
            runs = list(self.running.values())
        for run, _ in runs:
            run.stop("handed back")
        for _, thread in runs:
            thread.join()
        self.health.stop()
        self.flush_spool()
