"""Collecting result files from a task's working folder after its run.

The folder was written by untrusted code, so the walk never enters a symlinked folder, takes only
regular files (a FIFO would block us, a device would read the host's hardware), opens each with
``O_NOFOLLOW`` and checks it again, and stops at the operator's caps on the number and total size
of files. A symlink to a file is collected as the original kolejka collects it, as the file it
points to, but only where it points inside the working folder as the task saw it (relative, or
absolute under ``/var/lib/kolejka/task``), every link on the way resolved the same way: a link to
``/etc/shadow`` never exports the host's file, nor the image's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kolejka.common import Collect, FileSpec, SpecError, check_name
from kolejka.common.globs import glob_regex

from .container import TASK_FOLDER

_CHUNK = 1 << 20


def regular_files(folder: Path, mount: str = TASK_FOLDER) -> Iterator[tuple[str, str]]:
    """``(name, source)`` of the files under `folder`, never entering a symlinked folder: a
    regular file is its own source, a symlink the file it points to within `folder` (the task
    saw `folder` at `mount`); links leading anywhere else are left out."""
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            entries = sorted(
                os.scandir(folder / prefix if prefix else folder), key=lambda e: e.name
            )
        except OSError:
            continue
        for entry in entries:
            name = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.is_symlink():
                source = resolve_inside(folder, name, mount)
                if source is not None and (folder / source).is_file():
                    yield name, source
            elif entry.is_dir(follow_symlinks=False):
                stack.append(name)
            elif entry.is_file(follow_symlinks=False):
                yield name, name


MAX_HOPS = 40  # as the kernel's limit on symlinks in one lookup


def resolve_inside(folder: Path, name: str, mount: str = TASK_FOLDER) -> str | None:
    """Where `name` (relative to `folder`, which the task saw at `mount`) leads once every
    symlink on the way is followed as inside the task's container: a path relative to `folder`,
    or `None` if it leads out of `folder`, loops, or breaks."""
    parts = name.split("/")
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        try:
            info = os.lstat(folder.joinpath(*resolved, part))
        except OSError:
            return None
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_HOPS:
            return None
        target = os.readlink(folder.joinpath(*resolved, part))
        if target.startswith("/"):
            if target != mount and not target.startswith(mount + "/"):
                return None
            resolved, target = [], target[len(mount) :]
        parts = target.split("/") + parts
    return "/".join(resolved) or None


@dataclass
class Collected:
    """What `collect` took: result `files` by name, and whether a cap cut it short."""

    files: dict[str, FileSpec] = field(default_factory=dict)
    truncated: bool = False
    bytes: int = 0


def _conflicts(name: str, taken: set[str]) -> bool:
    if name in taken:
        return True
    parts = name.split("/")
    if any("/".join(parts[:depth]) in taken for depth in range(1, len(parts))):
        return True
    return any(other.startswith(name + "/") for other in taken)


def collect(
    rules: Iterable[Collect],
    source: Path,
    target: Path,
    *,
    taken: Iterable[str] = (),
    max_files: int,
    max_bytes: int,
) -> Collected:
    """Copy the files `rules` match under `source` into `target`.

    Names already `taken` (the task's stdout/stderr) and names that would clash are skipped, as are
    names the format refuses. Past `max_files` or `max_bytes` nothing more is copied and
    `truncated` is set.
    """
    result = Collected()
    used = set(taken)
    candidates = list(regular_files(source))
    for rule in rules:
        pattern = glob_regex(rule.glob)
        for relative, origin in candidates:
            if not pattern.fullmatch(relative):
                continue
            parts = relative.split("/")[rule.strip :]
            if not parts:
                continue
            name = "/".join([rule.prefix, *parts] if rule.prefix else parts)
            try:
                check_name(name, "collect")
            except SpecError:
                continue
            if _conflicts(name, used):
                continue
            if len(result.files) >= max_files:
                result.truncated = True
                return result
            copied = _copy(source / origin, target / name, max_bytes - result.bytes)
            if copied is None:
                result.truncated = True
                return result
            if copied < 0:
                continue
            used.add(name)
            result.bytes += copied
            result.files[name] = FileSpec(path=name)
    return result


def _copy(source: Path, target: Path, room: int) -> int | None:
    """Copy one regular file; its size, -1 if it is not a regular file, `None` if it would not fit
    in `room` bytes."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return -1
        if info.st_size > room:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            copied = 0
            while copied < info.st_size:
                sent = os.sendfile(out, fd, None, min(_CHUNK, info.st_size - copied))
                if sent == 0:
                    break
                copied += sent
            return copied
        finally:
            os.close(out)
    finally:
        os.close(fd)
