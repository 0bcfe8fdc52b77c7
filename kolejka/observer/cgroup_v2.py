"""A session's group on cgroup v2: one directory in the unified tree.

Controllers must be enabled in every ancestor's ``cgroup.subtree_control``; the group itself
enables them for its children (the container runtime's group, nested sessions), which v2 allows
because a session's group never holds processes itself. Counts of this group's own limit hits
come from the ``*.events.local`` files where the kernel has them. The peak memory is read through
a file descriptor on which the peak was reset when the program started (kernel 6.12 and later);
older kernels cannot reset it and report the peak since the group was made.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .cgroups import (
    CFS_PERIOD_US,
    V2_CONTROLLERS,
    CgroupError,
    Counters,
    GroupLimits,
    cpu_list,
    kill_all,
    procs_below,
    read_int,
    read_keyed,
    read_text,
    remove_tree,
    write,
)

_US = 1e-6


class CgroupV2:
    """The group `path` under the unified tree mounted at `root`."""

    def __init__(self, root: Path, path: str) -> None:
        self.root = root
        self.path = path
        self.dir = root / path
        self._lock = threading.Lock()
        self._peak_fd: int | None = None

    def create(self, limits: GroupLimits) -> None:
        """Make the group (enabling the controllers on the way down) and apply `limits`."""
        level = self.root
        for part in Path(self.path).parts:
            self._enable_controllers(level)
            level = level / part
            level.mkdir(exist_ok=True)
        self.set_limits(limits)
        self._enable_controllers(self.dir)

    @staticmethod
    def _enable_controllers(folder: Path) -> None:
        enabled = set(read_text(folder / "cgroup.subtree_control").split())
        wanted = [name for name in V2_CONTROLLERS if name not in enabled]
        if wanted:
            write(folder / "cgroup.subtree_control", " ".join(f"+{name}" for name in wanted))

    def set_limits(self, limits: GroupLimits) -> None:
        if limits.cpuset is not None:
            write(self.dir / "cpuset.cpus", cpu_list(limits.cpuset))
        quota = "max" if limits.cpus is None else str(max(1000, round(limits.cpus * CFS_PERIOD_US)))
        write(self.dir / "cpu.max", f"{quota} {CFS_PERIOD_US}")
        write(self.dir / "memory.max", "max" if limits.memory is None else str(limits.memory))
        swap_file = self.dir / "memory.swap.max"
        if swap_file.exists():  # absent without swap accounting
            write(swap_file, "max" if limits.swap is None else str(limits.swap))
        write(self.dir / "pids.max", "max" if limits.pids is None else str(limits.pids))

    def _events(self, name: str) -> dict[str, int]:
        local = self.dir / f"{name}.events.local"
        return read_keyed(local if local.exists() else self.dir / f"{name}.events")

    def cpu_times(self) -> tuple[float, float, float]:
        """CPU seconds used: total, user and system."""
        cpu = read_keyed(self.dir / "cpu.stat")
        return (
            cpu.get("usage_usec", 0) * _US,
            cpu.get("user_usec", 0) * _US,
            cpu.get("system_usec", 0) * _US,
        )

    def pids_current(self) -> int:
        return read_int(self.dir / "pids.current")

    def refused_forks(self) -> int | None:
        try:
            return self._events("pids").get("max")
        except CgroupError:  # the group is going away
            return None

    def cpu_percpu(self) -> tuple[float, ...]:
        """Unknown: the unified hierarchy counts CPU time per group, not per CPU."""
        return ()

    def counters(self) -> Counters:
        usage, user, system = self.cpu_times()
        memory_events = self._events("memory")
        pids_events = self._events("pids")
        pids_peak = self.dir / "pids.peak"
        swap_peak = self.dir / "memory.swap.peak"
        return Counters(
            cpu_usage=usage,
            cpu_user=user,
            cpu_system=system,
            memory_current=read_int(self.dir / "memory.current"),
            memory_peak=self._memory_peak(),
            memory_failures=memory_events.get("max"),
            memory_ooms=memory_events.get("oom", 0),
            pids_current=self.pids_current(),
            pids_peak=read_int(pids_peak) if pids_peak.exists() else None,
            pids_failures=pids_events.get("max"),
            swap_peak=read_int(swap_peak) if swap_peak.exists() else None,
        )

    def _memory_peak(self) -> int:
        with self._lock:
            if self._peak_fd is not None:
                return int(os.pread(self._peak_fd, 64, 0).split()[0])
        peak = self.dir / "memory.peak"
        return read_int(peak if peak.exists() else self.dir / "memory.current")

    def reset_memory_peak(self) -> bool:
        """Reset the peak for our reads from now on; `False` where the kernel cannot."""
        try:
            fd = os.open(self.dir / "memory.peak", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            os.write(fd, b"reset\n")
            int(os.pread(fd, 64, 0).split()[0])
        except (OSError, ValueError, IndexError):
            os.close(fd)
            return False
        with self._lock:
            if self._peak_fd is not None:
                os.close(self._peak_fd)
            self._peak_fd = fd
        return True

    def processes(self) -> list[int]:
        return procs_below(self.dir)

    def attach(self, pid: int) -> None:
        write(self.dir / "cgroup.procs", str(pid))

    def kill(self) -> None:
        """``cgroup.kill`` (kernel 5.14+) where there is one; else freeze, SIGKILL all, thaw."""
        kill_file = self.dir / "cgroup.kill"
        if kill_file.exists():
            write(kill_file, "1")
            return
        if not self.processes():
            return
        write(self.dir / "cgroup.freeze", "1")
        deadline = time.monotonic() + 0.5
        while read_keyed(self.dir / "cgroup.events").get("frozen") != 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.0005)
        kill_all(self.processes())
        write(self.dir / "cgroup.freeze", "0")

    def remove(self, timeout: float = 5.0) -> None:
        if self.dir.exists():
            self.kill()
        with self._lock:
            if self._peak_fd is not None:
                os.close(self._peak_fd)
                self._peak_fd = None
        remove_tree(self.dir, time.monotonic() + timeout)

    def child(self, name: str) -> CgroupV2:
        return CgroupV2(self.root, f"{self.path}/{name}")
