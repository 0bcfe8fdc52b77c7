"""A session's group on cgroup v1: one directory per controller hierarchy.

Two v1 quirks shape this code. The kernel records refused forks (``pids.events``) and OOM kills
on the group of the process concerned, which for a container is the runtime's child group; so
OOM events of the session's own limit are caught with the v1 eventfd notification on
``memory.oom_control`` (as docker does for its ``OOMKilled`` flag), and refused forks are summed
over the session's groups while they exist (the session polls them while it runs: the runtime
removes the container's group when the container exits). Hits of the memory limit are counted
on the group that holds the limit, the session's (``memory.failcnt``). And a new cpuset group
starts with no cores, so every level we create gets its parent's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .cgroups import (
    CFS_PERIOD_US,
    V1_CONTROLLERS,
    Counters,
    GroupLimits,
    cpu_list,
    kill_all,
    procs_below,
    read_int,
    read_text,
    remove_tree,
    walk_down,
    write,
)

if TYPE_CHECKING:
    from .cgroups import Hierarchy

_NS = 1e-9


class CgroupV1:
    """The group `path` in each v1 hierarchy."""

    def __init__(self, hierarchy: Hierarchy, path: str) -> None:
        self.hierarchy = hierarchy
        self.path = path
        self._dirs = {name: hierarchy.mounts[name] / path for name in V1_CONTROLLERS}
        self._lock = threading.Lock()
        self._oom_event: int | None = None
        self._oom_control: int | None = None
        self._ooms = 0

    def _dir(self, controller: str) -> Path:
        return self._dirs[controller]

    def create(self, limits: GroupLimits) -> None:
        """Make the group in every controller's hierarchy and apply `limits`."""
        for folder in sorted(set(self._dirs.values())):
            folder.mkdir(parents=True, exist_ok=True)
        self._fill_cpusets()
        self.set_limits(limits)
        self._watch_ooms()

    def _fill_cpusets(self) -> None:
        root = self.hierarchy.mounts["cpuset"]
        level = root
        for part in Path(self.path).parts:
            parent, level = level, level / part
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read_text(level / name).strip():
                    write(level / name, read_text(parent / name).strip())

    def _watch_ooms(self) -> None:
        # Each OOM the kernel handles for this group's limit bumps the eventfd by one.
        self._oom_event = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        control = self._dir("memory") / "memory.oom_control"
        self._oom_control = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
        write(
            self._dir("memory") / "cgroup.event_control",
            f"{self._oom_event} {self._oom_control}",
        )

    def set_limits(self, limits: GroupLimits) -> None:
        if limits.cpuset is not None:
            write(self._dir("cpuset") / "cpuset.cpus", cpu_list(limits.cpuset))
        cpu = self._dir("cpu")
        write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        quota = -1 if limits.cpus is None else max(1000, round(limits.cpus * CFS_PERIOD_US))
        write(cpu / "cpu.cfs_quota_us", str(quota))
        self._set_memory(limits.memory, limits.swap)
        write(self._dir("pids") / "pids.max", "max" if limits.pids is None else str(limits.pids))

    def _set_memory(self, memory: int | None, swap: int | None) -> None:
        folder = self._dir("memory")
        memsw_file = folder / "memory.memsw.limit_in_bytes"
        new_memory = -1 if memory is None else memory
        new_memsw = -1 if memory is None or swap is None else memory + swap
        if not memsw_file.exists():  # no swap accounting: swap cannot be limited here
            write(folder / "memory.limit_in_bytes", str(new_memory))
            return
        # The kernel keeps memory <= memory+swap at every step, so the order of writes matters.
        current = read_int(folder / "memory.limit_in_bytes")
        if new_memsw == -1 or new_memsw >= current:
            write(memsw_file, str(new_memsw))
            write(folder / "memory.limit_in_bytes", str(new_memory))
        else:
            write(folder / "memory.limit_in_bytes", str(new_memory))
            write(memsw_file, str(new_memsw))

    def cpu_times(self) -> tuple[float, float, float]:
        """CPU seconds used: total (exact), user and system (counted in scheduler ticks)."""
        cpu = self._dir("cpuacct")
        return (
            read_int(cpu / "cpuacct.usage") * _NS,
            read_int(cpu / "cpuacct.usage_user") * _NS,
            read_int(cpu / "cpuacct.usage_sys") * _NS,
        )

    def pids_current(self) -> int:
        return read_int(self._dir("pids") / "pids.current")

    def counters(self) -> Counters:
        memory = self._dir("memory")
        pids = self._dir("pids")
        peak_file = pids / "pids.peak"
        usage, user, system = self.cpu_times()
        memory_peak = read_int(memory / "memory.max_usage_in_bytes")
        memsw_peak = memory / "memory.memsw.max_usage_in_bytes"
        return Counters(
            cpu_usage=usage,
            cpu_user=user,
            cpu_system=system,
            memory_current=read_int(memory / "memory.usage_in_bytes"),
            memory_peak=memory_peak,
            memory_failures=read_int(memory / "memory.failcnt"),
            memory_ooms=self._read_ooms(),
            pids_current=self.pids_current(),
            pids_peak=read_int(peak_file) if peak_file.exists() else None,
            pids_failures=self.refused_forks(),
            cpu_percpu=self.cpu_percpu(),
            swap_peak=max(0, read_int(memsw_peak) - memory_peak) if memsw_peak.exists() else None,
        )

    def cpu_percpu(self) -> tuple[float, ...]:
        """CPU seconds used on each CPU of the host, by number."""
        text = read_text(self._dir("cpuacct") / "cpuacct.usage_percpu")
        return tuple(int(value) * _NS for value in text.split())

    def refused_forks(self) -> int:
        """Forks refused by a pids limit in the session's groups that exist now."""
        refused = 0
        for group in walk_down(self._dir("pids")):
            with contextlib.suppress(OSError):  # a group may vanish while we look
                events = (group / "pids.events").read_text().split()
                refused += int(events[events.index("max") + 1]) if "max" in events else 0
        return refused

    def _read_ooms(self) -> int:
        with self._lock:
            if self._oom_event is not None:
                with contextlib.suppress(BlockingIOError):
                    self._ooms += os.eventfd_read(self._oom_event)
            return self._ooms

    def processes(self) -> list[int]:
        return procs_below(self._dir("pids"))

    def attach(self, pid: int) -> None:
        for folder in sorted(set(self._dirs.values())):
            write(folder / "cgroup.procs", str(pid))

    def reset_memory_peak(self) -> bool:
        write(self._dir("memory") / "memory.max_usage_in_bytes", "0")
        return True

    def kill(self) -> None:
        """Freeze the group (so nothing forks while we look), SIGKILL every process, thaw."""
        if not self.processes():
            return
        state = self._dir("freezer") / "freezer.state"
        write(state, "FROZEN")
        deadline = time.monotonic() + 0.5
        # A task in uninterruptible sleep can hold the group in FREEZING; kill it regardless.
        while read_text(state).strip() != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.0005)
        kill_all(self.processes())
        write(state, "THAWED")

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove the group from every hierarchy, also those a container
        runtime made it in (devices, named hierarchies, the hybrid unified tree)."""
        if self._dir("pids").exists():
            self.kill()
        with self._lock:
            for fd in (self._oom_event, self._oom_control):
                if fd is not None:
                    os.close(fd)
            self._oom_event = self._oom_control = None
        deadline = time.monotonic() + timeout
        roots = set(self.hierarchy.mounts.values()) | set(self.hierarchy.extra)
        for root in sorted(roots):
            remove_tree(root / self.path, deadline)

    def child(self, name: str) -> CgroupV1:
        return CgroupV1(self.hierarchy, f"{self.path}/{name}")
