"""The docker container of one task, as the engine's API takes it: safe by default.

No network unless asked, every capability dropped, no new privileges, kolejka's seccomp profile,
a read-only root, an unprivileged user, no host path but the task's own workspace (and the
session's observer socket), no image VOLUMEs on the host, no healthcheck processes, no logs kept,
no core dumps, and the task's cgroup session as the container's cgroup parent.

A task the operator lets run as root (kolejka-judge's: it makes users for the solution and
``chown``s files to them) gets uid 0, a writable root file system (bounded by the worker, see
`rootfs`) and the few capabilities user switching and file ownership need, `ROOT_CAPABILITIES`;
everything else stays as above.

This module only builds the document (a plain dict, so it is checked without an engine);
`execute` sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolejka.common import Task

from .seccomp import SECURITY_OPT

TASK_FOLDER = "/var/lib/kolejka/task"
OBSERVER_SOCKET = "/run/kolejka/observer.sock"
# Where the original kolejka's tasks (kolejka-judge) find their observer.
LEGACY_OBSERVER_SOCKET = "/var/run/kolejka/observer/socket"
SHM_MAX = 64 * 2**20
# What root needs to make users and hand them files (chown, chmod g+s, setuid, setgid), to read
# and write files of those users (DAC_OVERRIDE, FOWNER) and to stop their processes (KILL).
ROOT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")


@dataclass(frozen=True)
class Plan:
    """Everything about a container that is not in the task itself."""

    name: str
    user: str
    task_folder: Path  # host side of TASK_FOLDER
    tmp_folder: Path  # host side of /tmp
    cgroup_parent: str
    workspace: int  # bytes; /dev/shm gets at most this much
    network: str | None = None  # the docker network, or None for none
    gpus: tuple[int, ...] = ()
    observer_socket: str | None = None  # host path of the session's socket
    image_volumes: tuple[str, ...] = ()
    storage: int | None = None  # --storage-opt size, where the engine supports it
    labels: Mapping[str, str] = field(default_factory=dict)
    root: bool = False  # root with ROOT_CAPABILITIES and a writable root file system


def gpu_requests(gpus: tuple[int, ...]) -> list[dict[str, Any]]:
    """Docker device requests for these GPU indices (the nvidia container runtime serves them)."""
    if not gpus:
        return []
    return [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": [str(index) for index in gpus],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]


def _bind(source: Path | str, target: str, *, read_only: bool = False) -> dict[str, Any]:
    return {
        "Type": "bind",
        "Source": str(source),
        "Target": target,
        "ReadOnly": read_only,
        "BindOptions": {"Propagation": "rprivate"},
    }


def container_config(task: Task, plan: Plan) -> dict[str, Any]:
    """The ``POST /containers/create`` body for `task`."""
    mounts = [_bind(plan.task_folder, TASK_FOLDER), _bind(plan.tmp_folder, "/tmp")]
    # HOME is the working folder, as the original kolejka gives it; the task may set its own.
    environment = {"HOME": TASK_FOLDER, **task.environment}
    if plan.observer_socket is not None:
        # One socket, two protocols: ours and the original's (kolejka.observer.legacy).
        mounts.append(_bind(plan.observer_socket, OBSERVER_SOCKET))
        mounts.append(_bind(plan.observer_socket, LEGACY_OBSERVER_SOCKET))
        environment.setdefault("KOLEJKA_OBSERVER", OBSERVER_SOCKET)
    # An image's VOLUMEs would be writable host directories: cover each with an empty,
    # read-only tmpfs instead.
    mounts += [
        {"Type": "tmpfs", "Target": volume, "ReadOnly": True, "TmpfsOptions": {"SizeBytes": 4096}}
        for volume in plan.image_volumes
        if volume not in (TASK_FOLDER, "/tmp")
    ]
    host_config: dict[str, Any] = {
        "Mounts": mounts,
        "NetworkMode": plan.network or "none",
        "CapDrop": ["ALL"],
        "CapAdd": list(ROOT_CAPABILITIES) if plan.root else [],
        "SecurityOpt": ["no-new-privileges", SECURITY_OPT],
        "ReadonlyRootfs": not plan.root,
        "Privileged": False,
        "CgroupParent": plan.cgroup_parent,
        "LogConfig": {"Type": "none", "Config": {}},
        "IpcMode": "private",
        "ShmSize": min(SHM_MAX, plan.workspace),
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "OomScoreAdj": 1000,
        # Root tasks run under docker's init (tini) as process 1, as the original ran every task:
        # it reaps the orphans a judge's solutions leave, whose zombies would hold the pids limit.
        "Init": plan.root,
        "AutoRemove": False,
    }
    if plan.gpus:
        host_config["DeviceRequests"] = gpu_requests(plan.gpus)
    if plan.storage is not None:
        host_config["StorageOpt"] = {"size": str(plan.storage)}
    stdin = task.stdin is not None
    return {
        "Image": task.image,
        "Entrypoint": [""],  # `args` is the whole command line, as the format says
        "Cmd": list(task.args),
        "Env": [f"{key}={value}" for key, value in environment.items()],
        "WorkingDir": TASK_FOLDER,
        "User": plan.user,
        "Hostname": "kolejka",
        "Labels": dict(plan.labels),
        "AttachStdin": stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": stdin,
        "StdinOnce": stdin,
        "Tty": False,
        "Healthcheck": {"Test": ["NONE"]},
        "HostConfig": host_config,
    }
