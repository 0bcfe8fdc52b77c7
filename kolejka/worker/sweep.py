"""`sweep`: remove what workers on this host left when they died without cleaning up (killed by
SIGKILL, the machine lost power): their containers, cgroups and workspaces.

A worker names everything it makes with its pid (a container label, the workspace's and the
group's names) and, in a foreman, with the foreman's identity (`WorkerConfig.owner`: its node
name and work dir). A foreman's sweep removes only what carries its own identity: it holds the
lock of that identity (`kolejka.foreman.lock`), so whatever carries it was left by a run that
is over, whatever its pid. A worker without an identity removes only what carries none and was
made by a worker whose pid no longer runs. Another grid's foreman on the same host, or one in
another pid namespace, is never touched. The foreman calls it when it starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .config import WorkerConfig
from .run import HOST_PID_LABEL, LABEL, OWNER_LABEL
from .sessions import owner_tag
from .workspace import Workspace


def _dead(pid_text: str) -> bool:
    """Whether the worker whose pid is `pid_text` no longer runs (`False` if in doubt)."""
    if not pid_text.isdigit() or int(pid_text) <= 0:
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _left_by_us(config: WorkerConfig, labels: dict[str, str]) -> bool:
    owner = labels.get(OWNER_LABEL)
    if config.owner is not None:
        return owner == config.owner
    host, _, pid = labels.get(HOST_PID_LABEL, "").rpartition(":")
    return owner is None and host == socket.gethostname() and _dead(pid)


def _group_left_by_us(config: WorkerConfig, name: str) -> bool:
    if config.owner is not None:
        return name.startswith(owner_tag(config.owner) + "-")
    return _dead(name.partition("-")[0])


def sweep(config: WorkerConfig) -> list[str]:
    """Remove the containers, cgroups (made without an observer) and workspaces left by dead
    workers of this identity; return what was removed."""
    from . import engine
    from .sessions import _hierarchy

    removed: list[str] = []
    api = engine.client(config.docker_url)
    for container in api.containers(all=True, filters={"label": LABEL}):
        if _left_by_us(config, container.get("Labels") or {}):
            with contextlib.suppress(Exception):  # removed meanwhile
                api.remove_container(container["Id"], force=True, v=True)
                removed.append(f"container {container['Id'][:12]}")
    hierarchy = _hierarchy()
    for name in hierarchy.leftovers(config.cgroup_base):
        if _group_left_by_us(config, name):
            hierarchy.group(f"{config.cgroup_base}/{name}").remove()
            removed.append(f"cgroup {config.cgroup_base}/{name}")
    for folder in sorted(Path(config.temp_dir).glob(f"{Workspace.PREFIX}*")):
        # A foreman's workspaces are in its own work dir: all of them are its own.
        pid = folder.name[len(Workspace.PREFIX) :].partition("-")[0]
        if config.owner is not None or _dead(pid):
            Workspace(folder, 0, 0).remove()
            removed.append(f"workspace {folder}")
    return removed
