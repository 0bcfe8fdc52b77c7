"""One claimed task on this node: fetch its files and image, run it (its output streamed to the
server as it prints, `logstream`), heartbeat, report.

Runs in its own thread. Whatever happens, the lease ends in exactly one report: a result, a
failure (the server retries the task elsewhere), a release (handed back on shutdown), or nothing
when the lease was lost or the owner cancelled (the server has already moved on).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kolejka.client import ClientError, Conflict, KolejkaClient, Lease, LeaseLost, TaskInfo
from kolejka.common import (
    Demand,
    FileSpec,
    KolejkaError,
    Result,
    SpecError,
    Status,
    load_result,
    save_task,
)
from kolejka.worker import Deadline, Placement
from kolejka.worker.config import MAX_OUTPUT

from .blobcache import BlobCache
from .images import ImageCache, ImageUnavailableError
from .logstream import LogStream
from .spool import Spool, Spooled

log = logging.getLogger(__name__)

HEARTBEAT_MAX = 5.0


class Runner(Protocol):
    """Runs a task folder into a result folder (the worker, called in-process)."""

    def __call__(
        self,
        task_dir: Path,
        result_dir: Path,
        *,
        placement: Placement,
        cancel: threading.Event,
        deadline: Deadline,
        image: Mapping[str, Any],
        later: contextlib.ExitStack,
    ) -> Result: ...


@dataclass
class TaskRun:
    """A task this node holds a lease on. `deadline`: when the task must be dead unless the
    lease is renewed (its end less the margin, by this host's clock)."""

    lease: Lease
    info: TaskInfo
    demand: Demand
    placement: Placement
    deadline: Deadline
    cancel: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    # Wakes the heartbeat at once: when the task starts (the server shows it running) and ends.
    poke: threading.Event = field(default_factory=threading.Event)
    # Why the task was stopped from outside, if it was: "lost", "cancelled", "handed back".
    stopped: str | None = None
    # The next tasks the server gave the node in its answer to this task's result, and when
    # (`time.monotonic()`): the foreman starts them once this task's slot is free.
    claimed: list[tuple[Lease, TaskInfo]] = field(default_factory=list)
    claimed_at: float = 0.0

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
        self.cancel.set()


@dataclass
class Toolkit:
    """What a task run needs from its foreman. `connect` makes a client of the foreman's user:
    each thread talks through its own (a `requests` session is not made for sharing)."""

    connect: Callable[[], KolejkaClient]
    runner: Runner
    blobs: BlobCache
    images: ImageCache
    spool: Spool
    tasks_dir: Path
    on_outcome: Callable[[bool], None]  # called with whether the node did its part
    heartbeat: float | None = None  # the lease renewal period; None: min(ttl / 3, 5 s)
    max_output: int = MAX_OUTPUT  # the worker's cap on each of stdout and stderr
    # How many next tasks to ask for in the answer to a result (0: none; the foreman claims).
    next_tasks: Callable[[], int] = lambda: 0


def execute(run: TaskRun, kit: Toolkit, later: contextlib.ExitStack) -> None:
    """Run `run` to its one report; never raises. What need not delay the report (removing the
    task's container) is left on `later`, for the caller to close once the slot is free."""
    client = kit.connect()
    beats = threading.Thread(
        target=_heartbeat, args=(run, kit.connect(), kit.heartbeat), daemon=True
    )
    beats.start()
    folder = kit.tasks_dir / run.lease.id
    try:
        result = _run(run, kit, client, folder, later)
        if run.stopped == "handed back":
            client.release(run.lease)
        elif run.stopped is not None:
            log.info("task %s %s; its result is dropped", run.info.key, run.stopped)
        elif result.status == Status.SYSTEM_ERROR:
            _fail(run, kit, client, result.error or "the worker failed")
        else:
            kit.on_outcome(True)
            spooled = kit.spool.put(run.lease.id, run.info.key, folder / "result")
            claimed = upload(client, kit.spool, spooled, kit.next_tasks())
            run.claimed, run.claimed_at = claimed or [], time.monotonic()
            sent = "kept" if claimed is None else "sent"
            log.info("task %s: %s, result %s", run.info.key, result.status, sent)
    except ImageUnavailableError as error:
        _fail(run, kit, client, str(error))
    except SpecError as error:
        # The server checked the task with the same rules; a task it took but we refuse is not
        # worth retrying elsewhere.
        _report_failure(client, run, f"invalid task: {error}", retry=False)
    except ClientError as error:
        log.warning("task %s: the server could not be reached: %s", run.info.key, error)
    except Exception as error:
        log.exception("task %s failed on this node", run.info.key)
        _fail(run, kit, client, f"foreman error: {type(error).__name__}: {error}")
    finally:
        run.finished.set()
        run.poke.set()
        beats.join()
        client.close()
        shutil.rmtree(folder, ignore_errors=True)


def _run(
    run: TaskRun, kit: Toolkit, client: KolejkaClient, folder: Path, later: contextlib.ExitStack
) -> Result:
    task = run.info.task
    if task is None:
        raise SpecError("task", None, "the claim carried no task")
    task_dir, result_dir = folder / "task", folder / "result"
    task_dir.mkdir(parents=True)

    local = {}
    for name, spec in task.files.items():
        if spec.reference is None:
            raise SpecError(f"files.{name}", spec.to_dict(), "a claimed task has only references")
        kit.blobs.place(spec.reference, client.get_blob, task_dir / name)
        local[name] = FileSpec(path=name)
    task.files = local
    # Which attempt this is (1 for the first; platform retries and retry-policy re-runs count),
    # so that a task can tell its runs apart; a value the task sets itself stays.
    task.environment = {"KOLEJKA_ATTEMPT": str(run.lease.attempt), **task.environment}
    save_task(task, task_dir)
    image = kit.images.ensure(task.image, max_size=task.limits.image)
    run.started.set()
    run.poke.set()
    # The worker writes the output files as the task prints; they go to the server as they grow.
    outputs = {"stdout": task.stdout, "stderr": None if task.merged_output else task.stderr}
    paths = {stream: result_dir / name for stream, name in outputs.items() if name is not None}
    with LogStream(kit.connect, run.lease, paths, kit.max_output):
        return kit.runner(
            task_dir,
            result_dir,
            placement=run.placement,
            cancel=run.cancel,
            deadline=run.deadline,
            image=image,
            later=later,
        )


def _fail(run: TaskRun, kit: Toolkit, client: KolejkaClient, error: str) -> None:
    kit.on_outcome(False)
    if run.stopped == "handed back":
        client.release(run.lease)
    elif run.stopped is None:
        _report_failure(client, run, error, retry=True)


def _report_failure(client: KolejkaClient, run: TaskRun, error: str, *, retry: bool) -> None:
    log.warning("task %s: platform failure reported to the server: %s", run.info.key, error)
    try:
        client.fail(run.lease, error, retry=retry)
    except LeaseLost:
        log.info("task %s: lease already gone", run.info.key)


def upload(
    client: KolejkaClient, spool: Spool, spooled: Spooled, claim: int = 0
) -> list[tuple[Lease, TaskInfo]] | None:
    """Post a spooled result, asking for up to `claim` next tasks in the answer; return those
    the server gave once the result left the spool (accepted, or refused for good: none).

    A server that cannot be reached leaves it in the spool for the next try: `None`.
    """
    claimed: list[tuple[Lease, TaskInfo]] = []
    try:
        _, claimed = client.post_result_and_claim(
            spooled.lease_id, load_result(spooled.result_dir), spooled.result_dir, claim
        )
    except LeaseLost:
        log.warning("task %s: lease expired before its result arrived", spooled.task_key)
    except Conflict as error:
        log.warning("task %s: result refused: %s", spooled.task_key, error)
    except ClientError as error:
        log.warning("task %s: result kept for later: %s", spooled.task_key, error)
        return None
    spool.remove(spooled)
    return claimed


def _heartbeat(run: TaskRun, client: KolejkaClient, interval: float | None) -> None:
    """Renew the lease until the task finishes; stop the task when the lease cannot be kept."""
    try:
        _beat(run, client, interval)
    finally:
        client.close()


def _beat(run: TaskRun, client: KolejkaClient, interval: float | None) -> None:
    ttl = run.lease.ttl or 30.0
    # Often enough to renew the lease twice over, and to hear of a cancel within seconds.
    interval = interval or max(min(ttl / 3, HEARTBEAT_MAX), 0.2)
    due, announced = time.monotonic() + interval, False
    while True:
        run.poke.wait(timeout=max(due - time.monotonic(), 0))
        run.poke.clear()
        if run.finished.is_set():
            return
        if time.monotonic() < due and (announced or not run.started.is_set()):
            continue
        running = run.started.is_set()
        sent = time.monotonic()
        try:
            beat = client.heartbeat(run.lease, running=running)
        except LeaseLost:
            log.warning("task %s: lease lost; killing our copy", run.info.key)
            run.stop("lost")
            return
        except KolejkaError as error:
            if time.monotonic() > run.deadline.at:
                log.warning(
                    "task %s: lease not renewed in time (%s); killing it", run.info.key, error
                )
                run.stop("lost")
                return
            due = time.monotonic() + min(interval, 1.0)
            continue
        announced = announced or running
        # The server renewed the lease for `ttl` from a moment after `sent`: by our clock it
        # surely lasts until `sent + ttl`. The task's session kills it at that less the margin.
        run.deadline.extend(sent + ttl - run.lease.margin)
        due = sent + interval  # a period from send to send: slow answers do not add up
        if beat.cancel:
            log.info("task %s: cancelled by its owner", run.info.key)
            run.stop("cancelled")
            return
