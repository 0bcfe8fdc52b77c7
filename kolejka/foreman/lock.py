"""One foreman per work dir, and per node name of one server, on this host.

Two foremen on one work dir would sweep each other's containers and share a spool; two with one
node name would register one node twice over and double its capacity. Each takes an exclusive
`flock` on a file (in the work dir; and in the lock dir, named after the server and the node),
held until the process exits, however it exits: the kernel releases it, so a foreman killed by
SIGKILL leaves no stale lock behind. The second foreman refuses to start, naming the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from kolejka.common import KolejkaError

DEFAULT_LOCK_DIR = Path("/run/kolejka/foreman")


class Locked(KolejkaError):
    """Another foreman holds the lock."""


class Lock:
    """An exclusive lock on `path`, held by this process while it is open."""

    def __init__(self, path: Path, what: str, about: Mapping[str, object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(self._fd)
            os.close(self._fd)
            raise Locked(
                f"another foreman (pid {holder.get('pid', '?')}, --work-dir "
                f"{holder.get('work_dir', '?')}) is running on {what}; stop it first, or give this "
                "one its own --work-dir and --name"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps({"pid": os.getpid(), **about}).encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _read(fd: int) -> dict[str, object]:
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def acquire(work_dir: Path, name: str, server: str, lock_dir: Path) -> list[Lock]:
    """Lock `work_dir` and the node `name` of `server`; raise `Locked` naming the holder."""
    about = {"name": name, "server": server, "work_dir": str(work_dir)}
    first = Lock(work_dir / "foreman.lock", f"the work dir {work_dir}", about)
    digest = hashlib.sha256(f"{server}\n{name}".encode()).hexdigest()[:16]
    try:
        second = Lock(lock_dir / f"{digest}.lock", f"the node {name!r} of {server}", about)
    except BaseException:
        first.release()
        raise
    return [first, second]
