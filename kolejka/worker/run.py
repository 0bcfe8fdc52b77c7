"""`execute`: run one task folder to one result folder. The CLI and the foreman both call it.

The steps, and what undoes each (in reverse, whatever happens in between): check the task; get
its image; mount its workspace (unmount); open its cgroup session, at the observer or in-process
(close: kill what is left, remove the group); create the container (remove it); attach, start,
stream the output, wait; read the session's final figures; collect the files; decide the verdict;
write the result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
import pwd
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kolejka.common import (
    FileSpec,
    KolejkaError,
    Limits,
    Result,
    SpecError,
    Status,
    Task,
    load_task,
    save_result,
)
from kolejka.observer.sessions import Reason, Report

from . import engine, rootfs
from .collect import collect
from .config import DEFAULT_LIMITS, Placement, WorkerConfig
from .container import Plan, container_config
from .deadline import Deadline
from .sessions import open_session
from .streams import STDERR, STDOUT, Sink, feed, pump
from .workspace import Workspace, WorkspaceFull

log = logging.getLogger(__name__)

LABEL = "org.kolejka.worker"
HOST_PID_LABEL = "org.kolejka.host-pid"  # host:pid of the worker that made the container
OWNER_LABEL = "org.kolejka.owner"  # the foreman's identity (`WorkerConfig.owner`), if any
# How often a running task's session at the observer is looked at: an observer that no longer
# answers can no longer enforce the task's limits, so the task is stopped.
OBSERVER_CHECK = 1.0


class SessionHandle(Protocol):
    """A task's cgroup session, in-process or at the observer."""

    @property
    def cgroup_parent(self) -> str: ...
    def kill(self, reason: Reason) -> None: ...
    def set_deadline(self, at: float | None) -> None: ...
    def report(self) -> Report: ...
    def close(self) -> Report: ...


class Interrupted(Exception):
    """The caller cancelled the task."""


def execute(
    task_dir: str | os.PathLike[str],
    result_dir: str | os.PathLike[str],
    *,
    config: WorkerConfig,
    placement: Placement | None = None,
    cancel: threading.Event | None = None,
    deadline: Deadline | None = None,
    image: Mapping[str, Any] | None = None,
    later: contextlib.ExitStack | None = None,
) -> Result:
    """Run the task in `task_dir` and write its result (``kolejka_result.json`` and the output
    files) into `result_dir`, which must be missing or empty. Return the result.

    Thread-safe: call it from many threads at once (one docker client is shared). `placement`
    gives the cores and GPUs the foreman assigned; `cancel`, when set, kills the task at once (the
    result is then ``SYSTEM_ERROR``, error ``cancelled``). `deadline`, when given, is handed to
    the task's session, which kills the task at that moment unless the caller extends it (a lease
    the caller could not renew; ``SYSTEM_ERROR``). `image`, when given, is the task's image's
    inspect document as the caller has just taken it (the foreman, bringing the image in): the
    worker then does not inspect the image again, unless its pull policy is ``always``.
    `later`, when given, takes the removal of the task's container, which is otherwise done
    before returning: the caller (the foreman) sends the result first, then closes `later`.
    Whatever the task does, and whatever fails in the platform, the verdict is in the result
    (``SYSTEM_ERROR`` says what failed): the only exception raised for a task is `SpecError` (an
    invalid task: nothing was run and no result written). `OSError` is raised if the result
    itself cannot be written. Nothing is left behind (once `later` is closed): no container,
    cgroup, mount or temporary folder.
    """
    task_path, result_path = Path(task_dir), Path(result_dir)
    task = load_task(task_path)
    _check_result_dir(result_path)
    result = _Run(
        task, task_path, result_path, config, placement, cancel, deadline, image, later
    ).run()
    save_result(result, result_path)
    return result


SYSTEMD_DRIVER = "cgroup-parent for systemd cgroup"


def _hint(explanation: str) -> str:
    """What the operator can do about docker's `explanation`, where we know."""
    if SYSTEMD_DRIVER in explanation:
        return (
            "; kolejka needs docker's cgroupfs cgroup driver: put"
            ' "exec-opts": ["native.cgroupdriver=cgroupfs"] in /etc/docker/daemon.json'
            " and restart docker"
        )
    return ""


def _check_result_dir(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise SpecError("result folder", str(path), "must be a missing or empty folder")
    path.mkdir(parents=True, exist_ok=True)


def limits_in_force(task: Task, config: WorkerConfig) -> Limits:
    """The task's limits with the operator's defaults filled in and maxima applied (root also
    for the operator's `root_images`).

    `storage` bounds the container's root file system: writable for root tasks (bounded by
    the engine's storage-opt or by `rootfs`), read-only otherwise, where a limit the task gives
    holds trivially and the default one is left out.
    """
    defaults, maxima = config.defaults, config.maxima
    if any(fnmatch.fnmatchcase(task.image, pattern) for pattern in config.root_images):
        defaults = dataclasses.replace(defaults, root=True)
        maxima = dataclasses.replace(maxima, root=True)
    limits = task.limits.with_defaults(defaults).tightened(maxima)
    if not limits.root and task.limits.storage is None:
        limits = dataclasses.replace(limits, storage=None)
    return limits


def _cores(limits: Limits, placement: Placement | None) -> tuple[int, ...]:
    """The cores the task runs on: the foreman's placement, or ``cpus`` of those this process
    may use from ``cpus_offset`` on (wrapping round, as the original did). A task asking more
    cores than there are runs on all of them (`Demand.clamped`), as the original ran it."""
    if placement is not None and placement.cpus:
        return placement.cpus
    allowed = sorted(os.sched_getaffinity(0))
    wanted = min(limits.cpus or 1, len(allowed))
    offset = (limits.cpus_offset or 0) % len(allowed)
    return tuple(sorted((allowed * 2)[offset : offset + wanted]))


def _gpus(limits: Limits, placement: Placement | None) -> tuple[int, ...]:
    if placement is not None:
        wanted = limits.gpus or 0
        if len(placement.gpus) < wanted:
            raise _Platform(f"the task needs {wanted} GPUs; {len(placement.gpus)} were assigned")
        return placement.gpus[:wanted] if wanted else ()
    offset = limits.gpus_offset or 0
    return tuple(range(offset, offset + (limits.gpus or 0)))


def _user_ids(user: str) -> tuple[int, int]:
    name, _, group = user.partition(":")
    uid = int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid
    gid = int(group) if group.isdigit() else (pwd.getpwuid(uid).pw_gid if not group else uid)
    return uid, gid


class _Platform(Exception):
    """The platform failed; the message goes into the result's `error`."""


@dataclass
class _Outcome:
    exit_code: int | None = None
    report: Report | None = None
    start_error: str | None = None
    overflow: bool = False
    deadline_passed: bool = False
    observer_checked: float = 0.0


class _Run:
    def __init__(
        self,
        task: Task,
        task_dir: Path,
        result_dir: Path,
        config: WorkerConfig,
        placement: Placement | None,
        cancel: threading.Event | None,
        deadline: Deadline | None,
        image: Mapping[str, Any] | None = None,
        later: contextlib.ExitStack | None = None,
    ) -> None:
        self.task = task
        self.image = image
        self.later = later
        self.deadline = deadline
        self.task_dir = task_dir
        self.result_dir = result_dir
        self.config = config
        self.placement = placement
        self.cancel = cancel or threading.Event()
        self.limits = limits_in_force(task, config)
        self.result = Result(
            id=task.id or uuid.uuid4().hex,  # the original always gives one
            limits=self.limits,
            tags=list(config.tags),
            stdout=task.stdout,
            stderr=task.stderr,
            accounting="observer" if config.observer else "cgroup",
        )

    def run(self) -> Result:
        outcome = _Outcome()
        try:
            with contextlib.ExitStack() as undo:
                self._run(outcome, undo)
        except (SpecError, WorkspaceFull) as error:
            if isinstance(error, WorkspaceFull):
                raise SpecError("limits.workspace", self.limits.workspace, str(error)) from None
            raise
        except Interrupted:
            self._fail("cancelled")
        except (_Platform, KolejkaError) as error:
            self._fail(str(error))
        except Exception as error:  # the platform failed; the task must still get a verdict
            explanation = getattr(error, "explanation", None)  # docker's own message
            if explanation:
                self._fail(f"docker: {explanation}{_hint(str(explanation))}")
                return self.result
            log.exception("task %s: the platform failed", self.task.id)
            self._fail(f"{type(error).__name__}: {error}")
        else:
            self._judge(outcome)
        return self.result

    def _fail(self, error: str) -> None:
        self.result.status = Status.SYSTEM_ERROR
        self.result.error = error
        self.result.files = {}

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted

    def _run(self, outcome: _Outcome, undo: contextlib.ExitStack) -> None:
        config, limits, task = self.config, self.limits, self.task
        root = bool(limits.root)
        uid, gid = (0, 0) if root else _user_ids(config.user)
        cores, gpus = _cores(limits, self.placement), _gpus(limits, self.placement)
        # The cores it got, which may be fewer than it asked (`_cores`): its CPU quota and the
        # result's limits say so.
        self.limits = limits = dataclasses.replace(limits, cpus=len(cores))
        self.result.limits = dataclasses.replace(
            limits, cpus_offset=min(cores), gpus_offset=min(gpus, default=None)
        )
        api = engine.client(config.docker_url)
        try:
            image = engine.image_config(
                api, task.image, config.pull, limits.image, known=self.image
            )
        except engine.ImageUnavailable as error:
            raise _Platform(str(error)) from error
        self._check_cancel()
        workspace_size = limits.workspace or config.defaults.workspace or 2**30
        workspace = Workspace.create(
            config.temp_dir, workspace_size, config.workspace_inodes, uid, gid
        )
        undo.callback(workspace.remove)
        workspace.populate(task, self.task_dir)
        opened_at = self.deadline.at if self.deadline else None
        session, session_socket = open_session(config, limits, cores, uid, opened_at)
        undo.callback(_close_session, session)
        if self.deadline is not None:
            undo.callback(self.deadline.follow(session.set_deadline))
            if self.deadline.at != opened_at:  # renewed while the session was being opened
                session.set_deadline(self.deadline.at)
        self._check_cancel()
        name = f"kolejka-{secrets.token_hex(8)}"
        plan = Plan(
            name=name,
            user=f"{uid}:{gid}",
            task_folder=workspace.task,
            tmp_folder=workspace.tmp,
            cgroup_parent=session.cgroup_parent,
            workspace=workspace_size,
            network=config.network if limits.network else None,
            gpus=gpus,
            observer_socket=session_socket,
            image_volumes=tuple((image.get("Config") or {}).get("Volumes") or ()),
            storage=limits.storage if config.storage_opt else None,
            labels=container_labels(config),
            root=root,
        )
        container = api.create_container_from_config(container_config(task, plan), name)["Id"]
        # Once the session is closed the container is dead: its removal (~15 ms) may wait.
        (self.later or undo).callback(_remove_container, api, container)
        if root and not config.storage_opt:
            storage = limits.storage or DEFAULT_LIMITS.storage or workspace_size
            try:
                layer = rootfs.bound_writable_layer(
                    api, container, storage, config.workspace_inodes
                )
            except rootfs.RootfsError as error:
                raise _Platform(str(error)) from error
            undo.callback(rootfs.release, layer)
        sinks = self._sinks(undo)
        for output in (task.stdout, task.stderr):
            if output is not None:
                self.result.files[output] = FileSpec(path=output)
        self._attach_and_run(api, container, session, sinks, outcome)
        outcome.report = session.close()
        if outcome.start_error is None and not outcome.deadline_passed:
            taken = [name for name in (task.stdout, task.stderr) if name is not None]
            collected = collect(
                task.collect,
                workspace.task,
                self.result_dir,
                taken=taken,
                max_files=config.max_collect_files,
                max_bytes=config.max_collect_bytes,
            )
            self.result.files |= collected.files
            outcome.overflow = outcome.overflow or collected.truncated

    def _sinks(self, undo: contextlib.ExitStack) -> dict[int, Sink | None]:
        task, cap = self.task, self.config.max_output
        stdout = stderr = None
        if task.stdout is not None:
            stdout = Sink(self.result_dir / task.stdout, cap)
            undo.callback(stdout.close)
        if task.merged_output:
            stderr = stdout
        elif task.stderr is not None:
            stderr = Sink(self.result_dir / task.stderr, cap)
            undo.callback(stderr.close)
        return {STDOUT: stdout, STDERR: stderr}

    def _attach_and_run(
        self,
        api: Any,
        container: str,
        session: SessionHandle,
        sinks: dict[int, Sink | None],
        outcome: _Outcome,
    ) -> None:
        from docker.errors import APIError

        stdin = self.task.stdin is not None
        params = {"stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1}
        raw = api.attach_socket(container, params=params)
        sock: socket.socket = getattr(raw, "_sock", raw)
        try:
            try:
                api.start(container)
            except APIError as error:
                outcome.start_error = str(error.explanation or error)
                return
            started = time.monotonic()
            if stdin:
                spec = self.task.files[str(self.task.stdin)]
                feed(sock, self.task_dir / str(spec.path))
            limit = self.limits.time
            deadline = None if limit is None else started + limit + self.config.grace

            def stop(reason: Reason) -> None:
                with contextlib.suppress(Exception):  # it may have exited already
                    session.kill(reason)
                with contextlib.suppress(APIError):
                    api.kill(container)

            def tick() -> None:
                if self.cancel.is_set():
                    stop(Reason.CANCEL)
                    raise Interrupted
                late = deadline is not None and time.monotonic() > deadline
                if late and not outcome.deadline_passed:
                    outcome.deadline_passed = True
                    stop(Reason.TIME)
                if self.config.observer and time.monotonic() - outcome.observer_checked > (
                    OBSERVER_CHECK
                ):
                    outcome.observer_checked = time.monotonic()
                    self._check_observer(session, stop)

            def overflow() -> None:
                outcome.overflow = True
                session.kill(Reason.OUTPUT)

            pump(sock, sinks, tick=tick, overflow=overflow)
            outcome.exit_code = self._wait(api, container, tick)
        finally:
            sock.close()
            raw.close()

    @staticmethod
    def _check_observer(session: SessionHandle, stop: Callable[[Reason], None]) -> None:
        """Stop the task as a platform failure if the observer no longer answers for its
        session: nothing would enforce its time limits (the kernel still holds the rest)."""
        from kolejka.observer.client import ObserverError

        try:
            session.report()
        except ObserverError as error:
            stop(Reason.CANCEL)
            raise _Platform(
                f"the observer was lost while the task ran ({error}); the task was stopped, as "
                "its limits could no longer be enforced"
            ) from error

    @staticmethod
    def _wait(api: Any, container: str, tick: Callable[[], None]) -> int:
        import requests

        while True:
            try:
                return int(api.wait(container, timeout=1)["StatusCode"])
            except requests.exceptions.Timeout:  # the program closed its stdio but still runs
                tick()

    def _judge(self, outcome: _Outcome) -> None:
        result, report = self.result, outcome.report
        if report is not None:
            result.stats = report.stats
        if outcome.start_error is not None:
            self._judge_start_error(outcome.start_error)
            return
        result.result = outcome.exit_code
        killed = report.killed if report is not None else None
        # Past the deadline the attempt is over, whoever killed the task (the watchdog of a
        # foreman that was frozen, before the session's own watcher could say so).
        late = self.deadline is not None and self.deadline.left() <= 0
        if killed is Reason.DEADLINE or late:
            self._fail(
                "the task was stopped at its lease's deadline: its node could not renew the lease "
                "in time"
            )
            return
        if outcome.deadline_passed and killed is Reason.TIME and self.config.observer:
            result.error = "the observer did not stop the task at its time limit; the worker did"
        if killed is Reason.CPU_TIME:
            result.status = Status.CPU_TIME_LIMIT
        elif killed is Reason.TIME:
            result.status = Status.TIME_LIMIT
        elif killed is Reason.MEMORY or (report is not None and report.stats.memory.oom_kills):
            result.status = Status.MEMORY_LIMIT
        elif outcome.overflow:
            result.status = Status.OUTPUT_LIMIT
        elif outcome.exit_code == 0:
            result.status = Status.OK
        else:
            result.status = Status.RUNTIME_ERROR

    def _judge_start_error(self, error: str) -> None:
        result = self.result
        result.error = f"the program could not be started: {error}"
        result.status, result.result = start_verdict(self.task.args[0], error)


def start_verdict(program: str, error: str) -> tuple[Status, int | None]:
    """The verdict and exit code for the engine's `error` starting `program`: the task's fault
    (as a shell would say: 127 not found, 126 not executable) only where the error is about
    `program` itself; any other failure to start is the platform's."""
    if f"exec: {json.dumps(program)}" in error:
        if "executable file not found" in error or "no such file or directory" in error:
            return Status.RUNTIME_ERROR, 127
        if any(why in error for why in ("permission denied", "is a directory", "format error")):
            return Status.RUNTIME_ERROR, 126
    if "OOM" in error or "out of memory" in error:
        return Status.MEMORY_LIMIT, None
    return Status.SYSTEM_ERROR, None


def container_labels(config: WorkerConfig) -> dict[str, str]:
    """The labels of a task's container: what `sweep` tells leftovers by."""
    labels = {LABEL: "1", HOST_PID_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
    if config.owner is not None:
        labels[OWNER_LABEL] = config.owner
    return labels | dict(config.labels)


def _close_session(session: SessionHandle) -> None:
    """Close `session` on the way out; an observer that no longer answers is logged (its
    successor sweeps the group when it starts), so that the run's own error is the one kept."""
    from kolejka.observer.client import ObserverError

    try:
        session.close()
    except ObserverError as error:
        if error.status not in (0, 404):
            raise
        log.warning("cannot close the task's session: %s", error)


def _remove_container(api: Any, container: str) -> None:
    api.remove_container(container, force=True, v=True)
