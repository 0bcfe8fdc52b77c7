"""The foreman's settings: flags over ``KOLEJKA_FOREMAN_*`` over the ``[foreman]`` file section.

The server and credentials come from the same layers as the client's (`kolejka.client.config`).
What the operator does not set is detected (`kolejka.foreman.hardware`).
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kolejka.client.config import Settings
from kolejka.common import Capacity, Limits, SpecError
from kolejka.common.units import parse_bool, parse_int, parse_memory, parse_time
from kolejka.worker.config import MAX_OUTPUT

from .hardware import Gpu, detect_capacity
from .lock import DEFAULT_LOCK_DIR

SECTION = "foreman"
DEFAULT_WORK_DIR = Path("/var/lib/kolejka/foreman")
DEFAULT_OBSERVER = "/run/kolejka/observer.sock"


@dataclass(frozen=True)
class ForemanConfig:
    """Everything a foreman needs to run. Sizes in bytes, durations in seconds."""

    name: str
    work_dir: Path
    capacity: Capacity
    tags: frozenset[str]
    slots: int
    defaults: Limits = field(default_factory=Limits)
    maxima: Limits = field(default_factory=Limits)
    root_images: tuple[str, ...] = ()
    observer: str | None = DEFAULT_OBSERVER
    blob_cache: int = 10 * 2**30
    image_cache: int = 50 * 2**30
    grace: float = 60.0
    claim_wait: float = 30.0
    burst: bool = False
    max_tasks: int | None = None
    failure_limit: int = 3
    heartbeat: float | None = None  # lease renewal period; None: min(ttl / 3, 5 s)
    health_interval: float = 5.0
    min_free_disk: int = 2**30
    max_output: int = MAX_OUTPUT  # bytes kept of each of a task's stdout and stderr
    lock_dir: Path = DEFAULT_LOCK_DIR

    @property
    def identity(self) -> str:
        """Who this foreman is on its host: what its containers and groups are labelled with."""
        return f"{self.name}:{self.work_dir}"


T = TypeVar("T")


def _pick(
    flag: T | None, settings: Settings, key: str, parse: Callable[[str, str], T], default: T
) -> T:
    if flag is not None:
        return flag
    text = settings.get(SECTION, key)
    return parse(text, f"{SECTION}.{key}") if text is not None else default


def _text(value: str, field: str) -> str:
    return value


def _flag(value: str, field: str) -> bool:
    return parse_bool(value, field) if value.strip() else False


def _counts(text: str, field: str) -> dict[str, int]:
    """``licence=1,fpga=2`` as a mapping."""
    counts = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, count = item.partition("=")
        if not equals or not name:
            raise SpecError(field, text, "must be NAME=COUNT[,NAME=COUNT...]")
        counts[name.strip()] = parse_int(count, f"{field}.{name.strip()}", minimum=1)
    return counts


def _positive_time(text: str, field: str) -> float:
    return parse_time(text, field, positive=True)


def _tags(text: str, field: str) -> frozenset[str]:
    return frozenset(filter(None, (tag.strip() for tag in text.split(","))))


def _limits(text: str, field: str) -> Limits:
    """``memory=1G,time=10min`` as `Limits`."""
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        if not equals:
            raise SpecError(field, text, "must be LIMIT=VALUE[,LIMIT=VALUE...]")
        values[name.strip()] = value.strip()
    return Limits.from_dict(values, field)


def build_config(
    args: argparse.Namespace, settings: Settings, gpus: list[Gpu], detected_tags: frozenset[str]
) -> ForemanConfig:
    """Resolve the configuration from parsed flags, `settings` and what was detected."""
    work_dir = Path(_pick(args.work_dir, settings, "work_dir", _text, str(DEFAULT_WORK_DIR)))
    work_dir.mkdir(parents=True, exist_ok=True)
    detected = detect_capacity(gpus)
    capacity = Capacity(
        cpus=_pick(args.cpus, settings, "cpus", parse_int, detected.cpus),
        memory=_pick(args.memory, settings, "memory", parse_memory, detected.memory),
        gpus=_pick(args.gpus, settings, "gpus", parse_int, detected.gpus),
        gpu_memory=_pick(
            args.gpu_memory, settings, "gpu_memory", parse_memory, detected.gpu_memory
        ),
        workspace=_pick(args.workspace, settings, "workspace", parse_memory, detected.workspace),
        resources=_pick(args.resources, settings, "resources", _counts, {}),
    )
    observer: str | None = _pick(args.observer, settings, "observer", _text, DEFAULT_OBSERVER)
    return ForemanConfig(
        name=_pick(args.name, settings, "name", _text, platform.node()),
        work_dir=work_dir,
        capacity=capacity,
        tags=detected_tags | _pick(args.tags, settings, "tags", _tags, frozenset()),
        slots=_pick(args.slots, settings, "slots", parse_int, max(capacity.cpus, 1)),
        defaults=_pick(args.defaults, settings, "defaults", _limits, Limits(cpus=1)),
        maxima=_pick(args.maxima, settings, "maxima", _limits, Limits()),
        root_images=tuple(
            sorted(_pick(args.root_images, settings, "root_images", _tags, frozenset()))
        ),
        observer=observer or None,
        blob_cache=_pick(args.blob_cache, settings, "blob_cache", parse_memory, 10 * 2**30),
        image_cache=_pick(args.image_cache, settings, "image_cache", parse_memory, 50 * 2**30),
        grace=_pick(args.grace, settings, "grace", parse_time, 60.0),
        claim_wait=_pick(args.claim_wait, settings, "claim_wait", parse_time, 30.0),
        burst=args.burst or _pick(None, settings, "burst", _flag, False),
        max_tasks=args.max_tasks or _pick(None, settings, "max_tasks", parse_int, 0) or None,
        heartbeat=_pick(args.heartbeat, settings, "heartbeat", parse_time, None),
        health_interval=_pick(
            args.health_interval, settings, "health_interval", _positive_time, 5.0
        ),
        min_free_disk=_pick(args.min_free_disk, settings, "min_free_disk", parse_memory, 2**30),
        max_output=_pick(args.max_output, settings, "max_output", parse_memory, MAX_OUTPUT),
        lock_dir=Path(_pick(args.lock_dir, settings, "lock_dir", _text, str(DEFAULT_LOCK_DIR))),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The foreman's own flags (every one is also ``KOLEJKA_FOREMAN_<NAME>`` and a file key)."""

    def memory(text: str) -> int:
        return parse_memory(text, "size")

    def duration(text: str) -> float:
        return parse_time(text, "duration")

    def period(text: str) -> float:
        return parse_time(text, "duration", positive=True)

    def count(text: str) -> int:
        return parse_int(text, "count", minimum=1)

    add = parser.add_argument
    add("--name", help="node name (default: the host name)")
    add("--work-dir", help=f"where tasks, caches and the spool live (default {DEFAULT_WORK_DIR})")
    add("--observer", help=f"observer socket, '' for none (default {DEFAULT_OBSERVER})")
    add("--slots", type=count, help="tasks run at once (default: the cpus)")
    add("--cpus", type=count, help="cores to offer (default: all this process may use)")
    add("--memory", type=memory, help="memory to offer, e.g. 16G (default: all)")
    add("--gpus", type=lambda t: parse_int(t, "gpus"), help="GPUs to offer (default: detected)")
    add("--gpu-memory", type=memory, help="memory of each GPU, e.g. 40G (default: detected)")
    add("--workspace", type=memory, help="workspace space to offer (default: the memory)")
    add("--resources", type=lambda t: _counts(t, "resources"), help="e.g. licence=1,fpga=2")
    add("--tags", type=lambda t: _tags(t, "tags"), help="extra tags, comma-separated")
    add("--defaults", type=lambda t: _limits(t, "defaults"), help="limits for tasks that set none")
    add("--maxima", type=lambda t: _limits(t, "maxima"), help="caps on limits, e.g. root=true")
    add(
        "--root-images",
        type=lambda t: _tags(t, "root_images"),
        help="images whose tasks run as root, comma-separated patterns (e.g. 'kolejka/judge:*')",
    )
    add("--blob-cache", type=memory, help="disk for cached task files (default 10G)")
    add("--image-cache", type=memory, help="disk for images this foreman pulls (default 50G)")
    add("--grace", type=duration, help="on SIGTERM, how long tasks may finish (default 60s)")
    add("--claim-wait", type=duration, help="long-poll length of a claim (default 30s)")
    add("--burst", action="store_true", help="exit once the queue has nothing for this node")
    add("--max-tasks", type=count, help="exit after running this many tasks")
    add("--heartbeat", type=period, help="how often to renew a lease (default: min(ttl/3, 5s))")
    add("--health-interval", type=period, help="how often to check the node (default 5s)")
    add("--min-free-disk", type=memory, help="free space the work dir needs (default 1G)")
    add(
        "--max-output",
        type=memory,
        help="bytes kept of each of a task's stdout and stderr; past it the task is killed with "
        "OUTPUT_LIMIT (default 16M)",
    )
    add("--lock-dir", help=f"where node-name locks are held (default {DEFAULT_LOCK_DIR})")


def describe(config: ForemanConfig) -> Mapping[str, Any]:
    """The configuration as JSON, for ``kolejka-foreman detect`` and the start-up log."""
    return {
        "name": config.name,
        "capacity": config.capacity.to_dict(),
        "tags": sorted(config.tags),
        "slots": config.slots,
        "defaults": config.defaults.to_dict(),
        "maxima": config.maxima.to_dict(),
        "root_images": list(config.root_images),
        "observer": config.observer,
        "work_dir": str(config.work_dir),
    }
