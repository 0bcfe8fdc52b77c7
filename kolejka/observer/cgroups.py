"""Where cgroups live on this host, and what a session's group offers whatever the version.

`Hierarchy.discover()` reads ``/proc/self/mountinfo`` once: cgroup v1 (one mount per controller,
as on this project's test host) or v2 (one unified tree, as on most production hosts). A session's
group is a `Cgroup` (`CgroupV1` or `CgroupV2`) with the same small verb set: `create` with
`GroupLimits`, `counters`, `processes`, `attach`, `kill`, `remove`.

Everything here is plain file I/O on cgroupfs, so the v2 code is tested against a fake tree of
ordinary files (the tests build one in a temp dir).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kolejka.common import KolejkaError

# The controllers a session needs: accounting (cpuacct/cpu, memory, pids), limits (cpu quota,
# cpuset, memory, pids) and stopping everything at once (freezer on v1, cgroup.kill on v2).
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer")
V2_CONTROLLERS = ("cpu", "cpuset", "memory", "pids")
CFS_PERIOD_US = 100_000


class CgroupError(KolejkaError):
    """A cgroup operation failed; the message names the file and what to check."""


@dataclass(frozen=True)
class GroupLimits:
    """Limits a group enforces through the kernel. `None`: not limited."""

    memory: int | None = None
    swap: int | None = None  # on top of `memory`
    pids: int | None = None
    cpus: float | None = None  # CPU quota, in cores
    cpuset: tuple[int, ...] | None = None  # cores to pin to


@dataclass(frozen=True)
class Counters:
    """What the kernel counted for a group and all its descendants. CPU in seconds, memory in bytes.

    Fields the kernel does not offer on this host are `None` (v1 keeps no limit-hit counts for a
    hierarchy's inner group; older kernels have no ``pids.peak``).
    """

    cpu_usage: float
    cpu_user: float
    cpu_system: float
    memory_current: int
    memory_peak: int
    memory_failures: int | None
    memory_ooms: int
    pids_current: int
    pids_peak: int | None
    pids_failures: int | None
    cpu_percpu: tuple[float, ...] = ()  # seconds per CPU, where the kernel counts them (v1)
    swap_peak: int | None = None  # peak swap use, where the kernel counts it


class Cgroup(Protocol):
    """One group, the same for v1 and v2. `path` is relative to the hierarchy's root."""

    path: str

    def create(self, limits: GroupLimits) -> None: ...
    def set_limits(self, limits: GroupLimits) -> None: ...
    def cpu_times(self) -> tuple[float, float, float]: ...
    def cpu_percpu(self) -> tuple[float, ...]: ...
    def pids_current(self) -> int: ...
    def refused_forks(self) -> int | None: ...
    def counters(self) -> Counters: ...
    def processes(self) -> list[int]: ...
    def attach(self, pid: int) -> None: ...
    def reset_memory_peak(self) -> bool: ...
    def kill(self) -> None: ...
    def remove(self, timeout: float = 5.0) -> None: ...
    def child(self, name: str) -> Cgroup: ...


@dataclass(frozen=True)
class Hierarchy:
    """The cgroup mounts of this host: `version` 1 or 2.

    For v1, `mounts` maps each controller to its mount point and `extra` lists every other cgroup
    mount (named hierarchies, the unified tree of a hybrid host): container runtimes create a
    container's groups in all of them, so a session's group must be removed from all of them.
    For v2, `mounts` maps ``""`` to the unified tree.
    """

    version: int
    mounts: dict[str, Path]
    extra: tuple[Path, ...] = ()

    @classmethod
    def discover(cls, mountinfo: Path = Path("/proc/self/mountinfo")) -> Hierarchy:
        """Find the cgroup mounts; raise `CgroupError` when a needed controller is missing."""
        v1: dict[str, Path] = {}
        others: list[Path] = []
        unified: Path | None = None
        for line in mountinfo.read_text().splitlines():
            fields = line.split()
            dash = fields.index("-")
            mountpoint = Path(_unescape(fields[4]))
            fstype, options = fields[dash + 1], fields[dash + 3].split(",")
            if fstype == "cgroup2":
                unified = mountpoint
            elif fstype == "cgroup":
                known = [option for option in options if option in V1_CONTROLLERS]
                for controller in known:
                    v1[controller] = mountpoint
                if not known:
                    others.append(mountpoint)
        if "memory" in v1:
            missing = [name for name in V1_CONTROLLERS if name not in v1]
            if missing:
                raise CgroupError(
                    f"cgroup v1 controllers {', '.join(missing)} are not mounted; mount them "
                    "under /sys/fs/cgroup (kolejka needs cpu, cpuacct, cpuset, memory, pids, "
                    "freezer)"
                )
            extra = [*others, *([unified] if unified else [])]
            return cls(1, v1, tuple(path for path in extra if path not in v1.values()))
        if unified is None:
            raise CgroupError("no cgroup file system is mounted (checked /proc/self/mountinfo)")
        return cls.v2(unified)

    @classmethod
    def v2(cls, root: Path) -> Hierarchy:
        """The unified hierarchy mounted at `root` (a real one, or a fake tree in tests)."""
        available = set((root / "cgroup.controllers").read_text().split())
        missing = [name for name in V2_CONTROLLERS if name not in available]
        if missing:
            raise CgroupError(
                f"cgroup v2 controllers {', '.join(missing)} are not available at {root}; "
                "enable them in the kernel and the root's cgroup.subtree_control"
            )
        return cls(2, {"": root})

    def group(self, path: str) -> Cgroup:
        """The group at `path` (``kolejka/abc``), relative to the root of each tree."""
        from .cgroup_v1 import CgroupV1
        from .cgroup_v2 import CgroupV2

        path = path.strip("/")
        if self.version == 1:
            return CgroupV1(self, path)
        return CgroupV2(self.mounts[""], path)

    def leftovers(self, base: str) -> list[str]:
        """Names of the groups under `base` (``kolejka/*``), for sweeping after a crash."""
        names: set[str] = set()
        roots = list(self.mounts.values()) + list(self.extra)
        for root in roots:
            folder = root / base.strip("/")
            if folder.is_dir():
                names.update(entry.name for entry in os.scandir(folder) if entry.is_dir())
        return sorted(names)


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    for code in ("\\040", "\\011", "\\012", "\\134"):
        text = text.replace(code, chr(int(code[1:], 8)))
    return text


def read_text(path: Path) -> str:
    # Plain system calls, not a text file object: a starting container's session reads its
    # counters every millisecond, and this halves the cost of each read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as error:
        raise CgroupError(f"cannot read {path}: {error.strerror}") from error
    return b"".join(chunks).decode("ascii")


def read_int(path: Path) -> int:
    text = read_text(path).strip()
    return -1 if text == "max" else int(text)


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (``usage_usec 10``, one per line) as a dict."""
    result = {}
    for line in read_text(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def write(path: Path, value: str) -> None:
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(value)
    except OSError as error:
        raise CgroupError(f"cannot write {value!r} to {path}: {error.strerror}") from error


def cpu_list(cores: tuple[int, ...]) -> str:
    """``(0, 1, 2, 5)`` as the kernel's list format ``0-2,5``."""
    parts: list[str] = []
    ordered = sorted(set(cores))
    start = previous = ordered[0]
    for core in [*ordered[1:], None]:
        if core is not None and core == previous + 1:
            previous = core
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if core is not None:
            start = previous = core
    return ",".join(parts)


def walk_down(folder: Path) -> Iterator[Path]:
    """`folder` and every group below it, parents before children."""
    yield folder
    try:
        entries = sorted(entry.path for entry in os.scandir(folder) if entry.is_dir())
    except FileNotFoundError:
        return
    for entry in entries:
        yield from walk_down(Path(entry))


def procs_below(folder: Path) -> list[int]:
    """Every process in `folder` and its descendants (a group may vanish while we look)."""
    pids: list[int] = []
    for group in walk_down(folder):
        try:
            pids.extend(int(pid) for pid in (group / "cgroup.procs").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_tree(folder: Path, deadline: float) -> None:
    """rmdir `folder` and the groups below it, deepest first; retry while a group is still busy
    (its last processes are exiting) until `deadline` (monotonic)."""
    for group in reversed(list(walk_down(folder))):
        while True:
            try:
                os.rmdir(group)
                break
            except FileNotFoundError:
                break
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(
                        f"cannot remove {group}: {error.strerror}; processes may still run in it"
                    ) from error
                time.sleep(0.002)


def group_of(pid: int, hierarchy: Hierarchy) -> str | None:
    """The group (path relative to the root, no leading slash) process `pid` is in, as the pids
    controller (v1) or the unified tree (v2) sees it; `None` if the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if hierarchy.version == 2 and controllers == "":
            return path.strip("/")
        if hierarchy.version == 1 and "pids" in controllers.split(","):
            return path.strip("/")
    return None
