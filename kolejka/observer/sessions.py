"""A session: one cgroup the observer accounts and whose `time` and `cpu_time` it enforces.

The worker opens a *container* session and starts the task's container inside its group (docker's
``cgroup_parent``). Container runtimes run their own init in the container's group before it
executes the task's program (runc's costs about 35 ms of CPU, 4 MiB and 6 threads here), so a
container session watches the group closely until the init has executed the program: the CPU used
until then is the baseline subtracted from every figure, the memory peak is reset at that moment,
the clock for `time` starts then, and the pids and memory limits, held high enough for the init
until then, drop to the task's. A session opened for a process that *attaches* itself instead
starts counting at the first attach.

While the program runs, a thread per session polls adaptively: it sleeps until the earliest
moment a limit could pass (the CPU left divided by the cores the group may use), at most 0.1 s,
and freezes and kills the whole group (nested sessions included) once one has passed.

A top-level session may carry a *deadline*: the moment its owner's lease on the task ends (less
a margin), renewed by the owner as it renews the lease. Past it the session is killed whatever
its state, so that a frozen owner's task is dead before the task runs anywhere else. A killed
session stays dead until it is closed: whatever enters its group later is killed too.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import secrets
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kolejka.common import CpuStats, Limits, MemoryStats, PidsStats, Stats
from kolejka.common.units import parse_str

from .cgroups import Cgroup, CgroupError, GroupLimits

log = logging.getLogger(__name__)

# What runc's init needs before it executes the program; limits below these are applied then.
RUNTIME_PIDS = 32
RUNTIME_MEMORY = 32 * 2**20

WAIT_POLL = 0.005  # until the container's first process appears (runc then lives >100 ms)
START_POLL = 0.001  # while the runtime's init runs: bounds the error of the CPU baseline
# While runc's init sleeps on its parent (a read of their unix socket, most of its ~150 ms here)
# it cannot execute the program: it has its root file system to set up first (~40 ms) and the
# exec fifo to wait on. It is looked at every WAIT_POLL then, every START_POLL otherwise.
PARENT_WAITS = ("unix_",)
# The memory peak is reset at the start only if the start was seen this soon after the last look
# that found the runtime alone: later, the program may already have used and freed memory.
START_RESET_WITHIN = 0.005
RUN_POLL_MIN = 0.001
RUN_POLL_MAX = 0.1


class State(enum.StrEnum):
    WAITING = "waiting"  # no program yet
    RUNNING = "running"  # counting and enforcing
    CLOSED = "closed"  # group removed; the report is final


class Reason(enum.StrEnum):
    """Why a session was killed."""

    TIME = "time"
    CPU_TIME = "cpu_time"
    OUTPUT = "output"  # by the worker: stdout/stderr passed the cap
    CANCEL = "cancel"  # by its owner
    CLOSE = "close"  # processes still running at close
    MEMORY = "memory"  # it used more than its memory limit before the limit could be applied
    DEADLINE = "deadline"  # its owner did not renew its deadline in time (a lost lease)


@dataclass
class Report:
    """A session's state and what it used so far (final once `state` is closed)."""

    id: str
    state: State
    killed: Reason | None = None
    stats: Stats = field(default_factory=Stats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": str(self.state),
            "killed": str(self.killed) if self.killed else None,
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        killed = data.get("killed")
        return cls(
            id=parse_str(data["id"], "id"),
            state=State(data["state"]),
            killed=Reason(killed) if killed else None,
            stats=Stats.from_dict(data.get("stats") or {}),
        )


@dataclass(frozen=True)
class _Cpu:
    usage: float = 0.0
    user: float = 0.0
    system: float = 0.0


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
        return handle.read().strip()


def _exe(pid: int) -> tuple[int, int]:
    info = os.stat(f"/proc/{pid}/exe")
    return info.st_dev, info.st_ino


def _waits_for_parent(pid: int) -> bool:
    """Whether `pid` sleeps on its parent (in the kernel's unix socket code, where runc's init
    reads its parent's messages); `False` whenever it cannot be told (no ``wchan``)."""
    try:
        with open(f"/proc/{pid}/wchan", encoding="ascii", errors="replace") as handle:
            return handle.read().startswith(PARENT_WAITS)
    except OSError:
        return False


class _Waker:
    """Like `threading.Event` for one waiting thread, which can also wait for a process to exit
    (its pidfd becomes readable): the watcher learns the exit time to the microsecond."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def set(self) -> None:
        os.eventfd_write(self._fd, 1)

    def wait(self, timeout: float, pidfd: int | None = None) -> bool:
        """Sleep up to `timeout`; `True` if the process of `pidfd` has exited."""
        fds = [self._fd] if pidfd is None else [self._fd, pidfd]
        ready, _, _ = select.select(fds, [], [], max(timeout, 0.0))
        if self._fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)
        return pidfd is not None and pidfd in ready

    def close(self) -> None:
        os.close(self._fd)


class Session:
    """Account and enforce one cgroup. Thread-safe; `close` is idempotent.

    `limits` are the task's (`memory`, `swap`, `pids`, `cpus`, `time`, `cpu_time`); `cpuset` the
    cores to pin to. Raises `CgroupError` if the group cannot be made.
    """

    def __init__(
        self,
        cgroup: Cgroup,
        limits: Limits,
        *,
        cpuset: tuple[int, ...] | None = None,
        container: bool = True,
        session_id: str | None = None,
        parent: Session | None = None,
    ) -> None:
        self.id = session_id or secrets.token_hex(8)
        self.secret = secrets.token_urlsafe(24)
        self.cgroup = cgroup
        self.limits = limits
        self.cpuset = cpuset
        self.container = container
        self.parent = parent
        self.children: dict[str, Session] = {}
        self._lock = threading.RLock()
        self._wake = _Waker()
        self._state = State.WAITING
        self._killed: Reason | None = None
        self._baseline = _Cpu()
        self._baseline_percpu: tuple[float, ...] = ()
        self._started: float | None = None
        self._ended: float | None = None
        self._main: int | None = None  # pidfd of the program's first process
        self._runtime_pids = 0
        self._pids_seen = 0
        self._refused_seen = 0  # forks refused, as seen while the groups that count them exist
        self._final: Report | None = None
        self._deadline: float | None = None  # time.monotonic() past which the session is killed
        try:
            self.cgroup.create(self._group_limits(starting=container))
        except CgroupError:
            # The kernel refused a limit: leave no half-made group behind in any hierarchy.
            with contextlib.suppress(CgroupError):
                self.cgroup.remove()
            self._wake.close()
            raise
        self._thread = threading.Thread(target=self._watch, name=f"session-{self.id}", daemon=True)
        self._thread.start()

    @property
    def cgroup_parent(self) -> str:
        """The group to give docker as ``cgroup_parent``."""
        return "/" + self.cgroup.path

    @property
    def state(self) -> State:
        return self._state

    def _group_limits(self, *, starting: bool) -> GroupLimits:
        limits = self.limits
        memory, pids = limits.memory, limits.pids
        if starting:
            memory = memory if memory is None else max(memory, RUNTIME_MEMORY)
            pids = pids if pids is None else max(pids, RUNTIME_PIDS)
        return GroupLimits(
            memory=memory, swap=limits.swap, pids=pids, cpus=limits.cpus, cpuset=self.cpuset
        )

    # -- the watcher thread -------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            if self.container:
                self._await_program()
            else:
                while self._state is State.WAITING and not self._expired() and not self._closing():
                    self._wake.wait(self._until_deadline(RUN_POLL_MAX))
            self._enforce()
            self._keep_dead()
        except (CgroupError, OSError) as error:
            if self._state is not State.CLOSED:
                log.warning("session %s: stopped watching: %s", self.id, error)
        finally:
            with self._lock:
                if self._main is not None:
                    os.close(self._main)
                    self._main = None

    def _closing(self) -> bool:
        return self._state is State.CLOSED or self._killed is not None

    def set_deadline(self, at: float | None) -> None:
        """Kill the session at `at` (`time.monotonic()`), unless set again before; `None`: no
        deadline. For top-level sessions: a nested one lives within its parent's."""
        with self._lock:
            self._deadline = at
        self._wake.set()

    def _until_deadline(self, pause: float) -> float:
        deadline = self._deadline
        return pause if deadline is None else max(min(pause, deadline - time.monotonic()), 0.0)

    def _expired(self) -> bool:
        """Kill the session if its deadline has passed; whether it is killed."""
        deadline = self._deadline
        if self._killed is None and deadline is not None and time.monotonic() >= deadline:
            self.kill(Reason.DEADLINE)
        return self._killed is not None

    def _keep_dead(self) -> None:
        """Until the session closes, kill whatever enters the group of a killed session (a
        container its owner was starting when the deadline passed)."""
        while self._killed is not None and self._state is not State.CLOSED:
            if self.cgroup.processes():
                self.cgroup.kill()
            self._wake.wait(RUN_POLL_MAX)

    def _await_program(self) -> None:
        """Wait for the runtime's init to execute the program; take the baseline just before."""
        while not self._expired() and not self._closing() and not self.cgroup.processes():
            self._wake.wait(self._until_deadline(WAIT_POLL))
        baseline = _Cpu(*self.cgroup.cpu_times())
        init: tuple[int, tuple[int, int]] | None = None
        ended = False
        seen_at = time.monotonic()
        while not self._expired() and not self._closing():
            cpu = _Cpu(*self.cgroup.cpu_times())
            pause = START_POLL
            if init is not None:
                try:
                    if _exe(init[0]) != init[1]:
                        break
                except FileNotFoundError:  # executed the program and exited, or failed
                    ended = True
                    break
                if _waits_for_parent(init[0]):
                    pause = WAIT_POLL
            else:
                try:
                    names = {pid: _comm(pid) for pid in self.cgroup.processes()}
                except OSError:  # one exited while we looked
                    continue
                if not all(name == "runc" or name.startswith("runc:[") for name in names.values()):
                    # Another runtime: its init's cost cannot be told apart and is counted.
                    break
                for pid, name in names.items():
                    if name == "runc:[2:INIT]":
                        with contextlib.suppress(FileNotFoundError):
                            init = (pid, _exe(pid))
            baseline = cpu
            seen_at = time.monotonic()
            self._wake.wait(self._until_deadline(pause))  # a close or kill wakes it at once
        if not self._closing():
            self._program_started(baseline, init[0] if init else None, ended, seen_at)

    def _program_started(
        self, baseline: _Cpu, pid: int | None, ended: bool, seen_at: float
    ) -> None:
        with self._lock:
            if self._state is not State.WAITING:
                return
            self._baseline = baseline
            self._started = time.monotonic()
            self._state = State.RUNNING
            self._watch_main(pid)
        if self.container:
            self._runtime_pids = self.cgroup.counters().pids_peak or 0
            self._apply_task_limits()
            # A program a starved watcher saw start late (or end) keeps the runtime's share: a
            # reset now could discard what it used, and a figure is never below the truth.
            on_time = time.monotonic() - seen_at <= START_RESET_WITHIN
            if on_time and not ended and self._ended is None:
                self.cgroup.reset_memory_peak()
        # After the limits, which must come as soon as can be; `_percpu` scales the per-CPU
        # figures to the total, whose baseline is exact.
        self._baseline_percpu = self.cgroup.cpu_percpu()

    def _apply_task_limits(self) -> None:
        """Drop the limits held high for the runtime to the task's. The kernel refuses a memory
        limit below what the group uses (after trying to reclaim): retry for 50 ms, then the
        program has used more memory than it may, and is killed for it."""
        deadline = time.monotonic() + 0.05
        while True:
            try:
                self.cgroup.set_limits(self._group_limits(starting=False))
                return
            except CgroupError:
                if time.monotonic() > deadline:
                    self.kill(Reason.MEMORY)
                    return
                time.sleep(START_POLL)

    def _watch_main(self, pid: int | None) -> None:
        if pid is None or self._main is not None:
            return
        try:
            self._main = os.pidfd_open(pid)
        except ProcessLookupError:  # it has already exited
            self._ended = time.monotonic()

    def _cores(self) -> float:
        bounds = [float(os.cpu_count() or 1)]
        if self.limits.cpus is not None:
            bounds.append(float(self.limits.cpus))
        if self.cpuset is not None:
            bounds.append(float(len(self.cpuset)))
        return min(bounds)

    def _enforce(self) -> None:
        """Until the session closes: kill it when a limit passes, and note when its program
        exits (also after a kill: the wall time ends at the death, not at the decision)."""
        while self._state is not State.CLOSED and self._started is not None:
            if self._killed is not None and (self._ended is not None or self._main is None):
                return
            limits, cores = self.limits, self._cores()  # `set_limits` may change them
            self._pids_seen = max(self._pids_seen, self.cgroup.pids_current())
            self._refused_seen = max(self._refused_seen, self.cgroup.refused_forks() or 0)
            pause = RUN_POLL_MAX
            if self._killed is None:
                if self._expired():
                    continue
                pause = self._until_deadline(pause)
                used = self.cgroup.cpu_times()[0] - self._baseline.usage
                elapsed = time.monotonic() - self._started
                if limits.cpu_time is not None and used >= limits.cpu_time:
                    self.kill(Reason.CPU_TIME)
                    continue
                if limits.time is not None and elapsed >= limits.time:
                    self.kill(Reason.TIME)
                    continue
                if limits.time is not None:
                    pause = min(pause, limits.time - elapsed)
                if limits.cpu_time is not None:
                    pause = min(pause, (limits.cpu_time - used) / cores)
            if self._wake.wait(max(pause, RUN_POLL_MIN), self._main):
                with self._lock:
                    self._ended = self._ended or time.monotonic()
                    if self._main is not None:
                        os.close(self._main)
                        self._main = None

    # -- verbs --------------------------------------------------------------------------------

    def attach(self, pid: int) -> None:
        """Move process `pid` into this session; the first attach starts the clock (here and in
        the enclosing sessions that wait for a process)."""
        with self._lock:
            if self._closing():
                raise CgroupError(f"session {self.id} is {self._killed or 'closed'}")
            outer = self.parent
            while outer is not None:
                outer._begin(None)
                outer = outer.parent
            self._begin(pid)
            self.cgroup.attach(pid)

    def _begin(self, pid: int | None) -> None:
        with self._lock:
            if self._state is not State.WAITING or self.container:
                return
            self._baseline = _Cpu(*self.cgroup.cpu_times())
            self._baseline_percpu = self.cgroup.cpu_percpu()
            self._started = time.monotonic()
            self._state = State.RUNNING
            self._watch_main(pid)
        self._wake.set()

    def kill(self, reason: Reason) -> None:
        """Stop every process of the session (and its nested sessions) now; the first reason
        given is the one reported."""
        with self._lock:
            if self._state is State.CLOSED:
                return
            if self._killed is None:
                self._killed = reason
        self._wake.set()
        self.cgroup.kill()

    def report(self) -> Report:
        """The session's figures so far, computed from the kernel's counters."""
        with self._lock:
            if self._final is not None:
                return self._final
            counters = self.cgroup.counters()
            now = time.monotonic()
        base = self._baseline
        usage = max(0.0, counters.cpu_usage - base.usage)
        user_ticks = max(0.0, counters.cpu_user - base.user)
        system_ticks = max(0.0, counters.cpu_system - base.system)
        user = system = None  # no tick fell in the run: the split is unknown
        if user_ticks or system_ticks:  # v1 counts the split in ticks: scale it to the total
            user = usage * user_ticks / (user_ticks + system_ticks)
            system = usage - user
        pids_peak = counters.pids_peak
        if pids_peak is None or pids_peak <= self._runtime_pids:
            # The kernel's peak is the runtime's init: the program never had more processes than
            # that, and the most we saw is all we know.
            pids_peak = max(self._pids_seen, counters.pids_current, 1)
        refused = counters.pids_failures
        if refused is not None:
            refused = max(refused, self._refused_seen)
        started = self._started
        elapsed = 0.0 if started is None else (self._ended or now) - started
        # Rounded to what the kernel counts in (ns) and our clock is good for (us), so that the
        # result shows 0.0024s rather than the noise of a float subtraction.
        usage = round(usage, 9)
        user, system = (None if x is None else round(x, 9) for x in (user, system))
        return Report(
            id=self.id,
            state=self._state,
            killed=self._killed,
            stats=Stats(
                cpu=CpuStats(usage=usage, user=user, system=system),
                cpus=self._percpu(counters.cpu_percpu, usage),
                memory=MemoryStats(
                    max_usage=counters.memory_peak,
                    max_swap=counters.swap_peak,
                    failures=counters.memory_failures,
                    oom_kills=counters.memory_ooms,
                ),
                pids=PidsStats(max_usage=pids_peak, failures=refused),
                time=round(max(0.0, elapsed), 6),
            ),
        )

    def _percpu(self, now: tuple[float, ...], usage: float) -> dict[str, CpuStats]:
        """CPU time on each CPU used since the program started (CPUs it used, by number): the
        kernel's per-CPU counts less those at the start, scaled to add up to `usage` (the
        per-CPU baseline is read a moment after the total's)."""
        base = self._baseline_percpu or (0.0,) * len(now)
        used = {index: max(0.0, value - base[index]) for index, value in enumerate(now)}
        total = sum(used.values())
        if not total or len(base) != len(now):
            return {}
        return {
            str(index): CpuStats(usage=round(usage * value / total, 9))
            for index, value in used.items()
            if value > 0
        }

    def _bound(self, limits: Limits) -> Limits:
        """`limits` at most this session's `memory`, `swap`, `pids` and `cpus` (a nested
        session's `time` and `cpu_time` are its own; this session's still apply to it)."""
        mine = self.limits
        return limits.tightened(
            Limits(memory=mine.memory, swap=mine.swap, pids=mine.pids, cpus=mine.cpus)
        )

    def set_limits(self, limits: Limits) -> Limits:
        """Replace this session's limits (bounded by its parent's, as when it was opened);
        return those in force. Raises `CgroupError` once it is closed or killed."""
        with self._lock:
            if self._closing():
                raise CgroupError(f"session {self.id} is {self._killed or 'closed'}")
            bounded = self.parent._bound(limits) if self.parent is not None else limits
            self.limits = bounded
            starting = self.container and self._state is State.WAITING
            self.cgroup.set_limits(self._group_limits(starting=starting))
        self._wake.set()
        return bounded

    def open_child(
        self, limits: Limits, *, container: bool = False, session_id: str | None = None
    ) -> Session:
        """A nested session inside this one: its limits are at most this session's."""
        with self._lock:
            if self._closing():
                raise CgroupError(f"session {self.id} is {self._killed or 'closed'}")
            bounded = self._bound(limits)
            child_id = session_id or secrets.token_hex(8)
            child = Session(
                self.cgroup.child(child_id),
                bounded,
                container=container,
                session_id=child_id,
                parent=self,
            )
            self.children[child.id] = child
            return child

    def close(self) -> Report:
        """Kill what still runs, take the final report, remove the group. Idempotent."""
        with self._lock:
            if self._final is not None:
                return self._final
        for child in list(self.children.values()):
            child.close()
        if self.cgroup.processes():
            self.kill(Reason.CLOSE)
        with self._lock:
            self._ended = self._ended or time.monotonic()
            report = self.report()
            self._state = State.CLOSED
            report.state = State.CLOSED
            self._final = report
        # Only now: a watcher woken before the state changed would sleep a whole poll again.
        self._wake.set()
        self._thread.join()
        self._wake.close()
        self.cgroup.remove()
        if self.parent is not None:
            self.parent.children.pop(self.id, None)
        return report
