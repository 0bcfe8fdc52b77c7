"""A bound on what a root task writes to its container's root file system.

A task that runs as root gets a writable root (kolejka-judge adds users to ``/etc/passwd``), and
docker's own bound on it (``--storage-opt size``) exists only on some storage back ends (overlay2
on xfs with project quotas). Elsewhere, with docker's overlay2 driver, the worker puts the
container's writable layer on a tmpfs of ``limits.storage`` bytes before the container starts:
the layer's folder (``…/overlay2/<id>``, holding ``diff`` (the upper layer), ``work`` and
``merged``, which overlayfs needs on one mount) is covered by the tmpfs with the same few entries
docker made in it. Writes past the bound fail with ENOSPC and never reach a disk, and the pages
are charged to the task's memory cgroup, as the workspace's are. The worker unmounts it before
removing the container; if the worker dies, docker unmounts it when `sweep` removes the
container (its overlay2 driver unmounts what is mounted in a layer it removes).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from kolejka.common import KolejkaError

from .workspace import mount_tmpfs, unmount

WHAT = "root file system layer"


class RootfsError(KolejkaError):
    """The container's writable layer cannot be bounded on this engine."""


def bound_writable_layer(api: Any, container: str, size: int, inodes: int) -> Path:
    """Put `container`'s (created, not started) writable layer on a tmpfs of `size` bytes and
    `inodes` files; return the mount point, for `release`. Raise `RootfsError` saying why it
    cannot be done (another storage driver, an unexpected layout)."""
    driver = (api.inspect_container(container).get("GraphDriver") or {}) or {}
    data = driver.get("Data") or {}
    if driver.get("Name") != "overlay2" or not data.get("UpperDir"):
        raise RootfsError(
            f"a root task's writable root file system can be bounded only on docker's overlay2 "
            f"storage driver (this engine uses {driver.get('Name')!r}) or with --storage-opt "
            "size (set the worker's storage_opt where the engine supports it)"
        )
    layer = Path(data["UpperDir"]).parent
    if Path(data.get("WorkDir") or "").parent != layer:
        raise RootfsError(f"unexpected overlay2 layout of {container}: {data}")
    entries = _entries(layer)
    mount_tmpfs(layer, f"size={size},nr_inodes={inodes},mode=0710", WHAT)
    try:
        for name, info, content in entries:
            path = layer / name
            if isinstance(content, str):
                os.symlink(content, path)
            elif content is None:
                path.mkdir()
            else:
                path.write_bytes(content)
            os.chown(path, info.st_uid, info.st_gid, follow_symlinks=False)
            if not isinstance(content, str):
                path.chmod(info.st_mode & 0o7777)
    except OSError:
        release(layer)
        raise
    return layer


_Entry = tuple[str, os.stat_result, "bytes | str | None"]
MAX_COPIED = 1 << 20


def _entries(layer: Path) -> list[_Entry]:
    """What docker made in a new layer's folder, parents first: small files (``link``,
    ``lower``), folders (``diff``, ``work``) and what a first mount left in them. Folders are
    `None`, symlinks their target. Raise `RootfsError` for another layout or a large tree."""
    entries: list[_Entry] = []
    copied = 0
    for folder, folders, files in os.walk(layer):
        relative = Path(folder).relative_to(layer)
        for name in sorted(folders + files):
            path = Path(folder, name)
            info = path.lstat()
            content: bytes | str | None
            if stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                content = None
            elif stat.S_ISREG(info.st_mode):
                copied += info.st_size
                if copied > MAX_COPIED:
                    raise RootfsError(f"the new container's layer {layer} holds too much to move")
                content = path.read_bytes()
            else:
                raise RootfsError(f"unexpected entry {path} in a new container's layer")
            entries.append((str(relative / name), info, content))
    names = {name for name, _, _ in entries}
    if "diff" not in names or "work" not in names:
        raise RootfsError(f"unexpected overlay2 layout in {layer}: {sorted(names)}")
    return entries


def release(layer: Path) -> None:
    """Unmount the tmpfs of `bound_writable_layer`; docker then finds its own folder again."""
    unmount(layer, WHAT)
