"""`sweep`: remove what workers on this host left when they died without cleaning up (killed by
SIGKILL, the machine lost power): their containers, cgroups and workspaces.

A worker names everything it makes with its pid (a container label, the workspace's and the
group's names), so a sweep removes only what belongs to workers that no longer run. The foreman
calls it when it starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .config import WorkerConfig
from .run import HOST_PID_LABEL, LABEL
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


def sweep(config: WorkerConfig) -> list[str]:
    """Remove dead workers' containers, cgroups (made without an observer) and workspaces;
    return what was removed."""
    from . import engine
    from .sessions import _hierarchy

    removed: list[str] = []
    api = engine.client(config.docker_url)
    host = socket.gethostname()
    for container in api.containers(all=True, filters={"label": LABEL}):
        owner_host, _, pid = (container.get("Labels") or {}).get(HOST_PID_LABEL, "").rpartition(":")
        if owner_host == host and _dead(pid):
            with contextlib.suppress(Exception):  # removed meanwhile
                api.remove_container(container["Id"], force=True, v=True)
                removed.append(f"container {container['Id'][:12]}")
    hierarchy = _hierarchy()
    for name in hierarchy.leftovers(config.cgroup_base):
        if _dead(name.partition("-")[0]):
            hierarchy.group(f"{config.cgroup_base}/{name}").remove()
            removed.append(f"cgroup {config.cgroup_base}/{name}")
    for folder in sorted(Path(config.temp_dir).glob(f"{Workspace.PREFIX}*")):
        if _dead(folder.name[len(Workspace.PREFIX) :].partition("-")[0]):
            Workspace(folder, 0, 0).remove()
            removed.append(f"workspace {folder}")
    return removed
