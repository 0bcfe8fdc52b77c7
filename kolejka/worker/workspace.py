"""A task's writable space: a size-capped tmpfs the worker mounts on the host, holding the task's
working folder (``task``, with its input files) and ``tmp``, both bind-mounted into the container.

The cap (``limits.workspace``) holds whatever the task writes: a full workspace fails writes with
ENOSPC and never touches the host's disks. Pages the task writes are charged to its memory cgroup,
so the memory limit also bounds them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

from kolejka.common import KolejkaError, Task

MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2

# The C library is already loaded in this process (no `find_library`: it runs ldconfig).
_libc = ctypes.CDLL(None, use_errno=True)


class WorkspaceError(KolejkaError):
    """The workspace could not be made or removed (not root? no tmpfs?)."""


class WorkspaceFull(KolejkaError):
    """The task's input files do not fit in its workspace."""


def mount_tmpfs(target: Path, options: str, what: str = "workspace") -> None:
    """Mount a tmpfs (nosuid, nodev) at `target`; raise `WorkspaceError` naming `what` it is."""
    if _libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()):
        code = ctypes.get_errno()
        raise WorkspaceError(
            f"cannot mount a tmpfs {what} at {target}: {os.strerror(code)}"
            + ("; the worker must run as root" if code == errno.EPERM else "")
        )


def unmount(target: Path, what: str = "workspace") -> None:
    """Unmount `target` (lazily if it is busy); nothing if it is not mounted."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    code = ctypes.get_errno()
    if code == errno.EINVAL:  # not mounted
        return
    if _libc.umount2(os.fsencode(target), MNT_DETACH):
        code = ctypes.get_errno()
        raise WorkspaceError(f"cannot unmount the {what} {target}: {os.strerror(code)}")


class Workspace:
    """One task's tmpfs. `task` and `tmp` are its two folders; `remove` undoes everything."""

    PREFIX = "kolejka-task-"

    def __init__(self, root: Path, uid: int, gid: int) -> None:
        self.root = root
        self.task = root / "task"
        self.tmp = root / "tmp"
        self.uid = uid
        self.gid = gid

    @classmethod
    def create(cls, temp_dir: Path, size: int, inodes: int, uid: int, gid: int) -> Workspace:
        """Mount a tmpfs of `size` bytes and `inodes` files under `temp_dir`, owned by uid:gid."""
        # The worker's pid in the name lets `sweep` tell a dead worker's workspace from a live one.
        root = Path(tempfile.mkdtemp(prefix=f"{cls.PREFIX}{os.getpid()}-", dir=temp_dir))
        try:
            mount_tmpfs(root, f"size={size},nr_inodes={inodes},mode=0700")
        except WorkspaceError:
            root.rmdir()
            raise
        workspace = cls(root, uid, gid)
        try:
            for folder, mode in ((workspace.task, 0o755), (workspace.tmp, 0o1777)):
                folder.mkdir()
                os.chown(folder, uid, gid)
                folder.chmod(mode)
        except OSError as error:
            workspace.remove()
            raise WorkspaceError(f"cannot prepare the workspace {root}: {error}") from error
        return workspace

    def populate(self, task: Task, task_dir: Path) -> None:
        """Copy the task's input files into its working folder, every one executable (as the
        original kolejka's worker made every task file ``0750``: a task folder that starts
        ``./script`` works whatever modes its files had on the way; the bit is no protection,
        since the task owns the file and may chmod it). Raise `WorkspaceFull` when they do not
        fit."""
        for name, spec in task.files.items():
            source = task_dir / str(spec.path)
            target = self.task / name
            try:
                self._make_parents(target)
                shutil.copyfile(source, target, follow_symlinks=True)
                os.chmod(target, 0o755)
                os.chown(target, self.uid, self.gid)
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise WorkspaceFull(
                        f"the task's input files do not fit in its workspace "
                        f"({self.capacity()} bytes); raise limits.workspace"
                    ) from error
                raise

    def _make_parents(self, target: Path) -> None:
        missing = []
        parent = target.parent
        while parent != self.task and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            folder.mkdir()
            os.chown(folder, self.uid, self.gid)

    def capacity(self) -> int:
        info = os.statvfs(self.root)
        return info.f_blocks * info.f_frsize

    def used(self) -> int:
        info = os.statvfs(self.root)
        return (info.f_blocks - info.f_bfree) * info.f_frsize

    def remove(self) -> None:
        """Unmount the tmpfs and remove its mount point. Idempotent."""
        if not self.root.exists():
            return
        unmount(self.root)
        self.root.rmdir()
