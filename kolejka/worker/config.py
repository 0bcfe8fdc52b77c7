"""What the operator decides for every task a worker runs (`WorkerConfig`), and where the foreman
places one task (`Placement`)."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from kolejka.common import Limits

GiB = 2**30
MiB = 2**20


class PullPolicy(enum.StrEnum):
    """When the worker asks a registry for the task's image."""

    MISSING = "missing"  # only when the node does not have it
    ALWAYS = "always"  # every time (the node's copy is used if the registry does not answer)
    NEVER = "never"  # never: a missing image is a SYSTEM_ERROR


# A task that sets nothing still cannot fill a disk or run forever.
DEFAULT_LIMITS = Limits(
    cpus=1,
    memory=1 * GiB,
    swap=0,
    pids=512,
    time=600.0,
    workspace=1 * GiB,
    storage=1 * GiB,
    network=False,
    root=False,
    gpus=0,
)
# Root in the container only where the operator says so.
DEFAULT_MAXIMA = Limits(root=False)


MAX_OUTPUT = 16 * MiB  # bytes kept of each of a task's stdout and stderr, by default


@dataclass(frozen=True)
class WorkerConfig:
    """Operator settings. Every field has a safe default.

    - `defaults` fill the limits a task leaves unset; `maxima` cap every limit (`Limits.tightened`:
      flags such as `network` and `root` are granted only if the maxima allow them).
    - `max_output`: bytes kept of each of stdout and stderr; past it the task is killed with
      ``OUTPUT_LIMIT``. `max_collect_files` / `max_collect_bytes`: caps on collected files.
    - `observer`: the observer's socket; `None` runs without one (the worker accounts and enforces
      in-process, ``accounting: cgroup``).
    - `pull`: when to pull images. `tags`: the node's tags, copied into results.
    - `temp_dir`: where per-task workspaces are mounted. `cgroup_base`: the cgroup under which
      sessions' groups are made (without an observer). `user`: the uid:gid tasks run as unless
      they may be root. `network`: the docker network of tasks with ``limits.network``.
    - `storage_opt`: the node's docker supports ``--storage-opt size`` (overlay2 on xfs with
      pquota); only then is ``limits.storage`` applied and reported.
    - `workspace_inodes`: files and folders a workspace may hold.
    - `grace`: how long past `time` the worker itself stops a task the observer did not stop.
    - `docker_url`: the docker engine; default ``DOCKER_HOST`` or the local socket.
    - `labels`: extra labels put on every container (tests use them to find their own).
    - `owner`: the identity of the foreman the worker runs in (its node name and work dir): it
      labels the containers and names the groups the worker makes, and `sweep` then removes only
      what carries it (another grid's foreman on the same host keeps its own).
    - `root_images`: image patterns (``kolejka/judge:*``, as `fnmatch`) whose tasks run as root
      unless they ask ``root: false``, whatever `defaults` and `maxima` say of root: the
      original kolejka ran every task as root, and kolejka-judge's tasks need it.
    """

    defaults: Limits = DEFAULT_LIMITS
    maxima: Limits = DEFAULT_MAXIMA
    max_output: int = MAX_OUTPUT
    max_collect_files: int = 1000
    max_collect_bytes: int = 256 * MiB
    observer: str | None = None
    pull: PullPolicy = PullPolicy.MISSING
    tags: tuple[str, ...] = ()
    temp_dir: Path = Path(os.environ.get("TMPDIR", "/tmp"))
    cgroup_base: str = "kolejka"
    user: str = "65534:65534"
    network: str = "bridge"
    storage_opt: bool = False
    workspace_inodes: int = 65536
    grace: float = 5.0
    docker_url: str = field(
        default_factory=lambda: os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    )
    labels: tuple[tuple[str, str], ...] = ()
    owner: str | None = None
    root_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placement:
    """Where the foreman runs one task: the cores (`cpus`) and GPU indices (`gpus`) it assigned.

    Without a placement the task gets cores ``cpus_offset`` onwards (0 if unset) of those this
    process may use, and no GPUs unless ``gpus_offset`` names them.
    """

    cpus: tuple[int, ...] = ()
    gpus: tuple[int, ...] = ()
