"""Whether a task fits a node: the one placement rule the server and the foreman both apply.

A node offers `Capacity` (cpus, memory, gpus, the memory of each GPU, workspace disk, abstract
resource counts such as ``{"licence": 1}``) and a set of tags; a task demands what its limits
and ``resources`` say, with unset limits taken from the node's defaults, exactly as the worker
will apply them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError
from .limits import Limits
from .task import Task
from .units import format_memory, parse_int, parse_memory


@dataclass(frozen=True)
class Capacity:
    """Countable resources of a node, or the part of them still free.

    `gpu_memory` is not counted but compared: the memory of each of the node's GPUs (of the
    smallest, since any of them may be the one a task gets), whatever is taken.
    """

    cpus: int = 0
    memory: int = 0
    gpus: int = 0
    workspace: int = 0
    resources: Mapping[str, int] = field(default_factory=dict)
    gpu_memory: int = 0

    @classmethod
    def from_dict(cls, data: object, name: str = "capacity") -> Capacity:
        if not isinstance(data, Mapping):
            raise SpecError(name, data, "must be an object")
        unknown = set(data) - {"cpus", "memory", "gpus", "gpu_memory", "workspace", "resources"}
        if unknown:
            key = sorted(unknown)[0]
            raise SpecError(f"{name}.{key}", data[key], "unknown capacity field")
        resources = data.get("resources") or {}
        if not isinstance(resources, Mapping):
            raise SpecError(f"{name}.resources", resources, "must be an object of counts")
        return cls(
            cpus=parse_int(data.get("cpus", 0), f"{name}.cpus"),
            memory=parse_memory(data.get("memory", 0), f"{name}.memory"),
            gpus=parse_int(data.get("gpus", 0), f"{name}.gpus"),
            gpu_memory=parse_memory(data.get("gpu_memory", 0), f"{name}.gpu_memory"),
            workspace=parse_memory(data.get("workspace", 0), f"{name}.workspace"),
            resources={
                str(key): parse_int(value, f"{name}.resources.{key}")
                for key, value in resources.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpus": self.cpus,
            "memory": format_memory(self.memory),
            "gpus": self.gpus,
            "gpu_memory": format_memory(self.gpu_memory),
            "workspace": format_memory(self.workspace),
            "resources": dict(self.resources),
        }

    def plus(self, other: Capacity) -> Capacity:
        """Return this capacity with `other` given back."""
        return self.minus(Capacity().minus(other))

    def minus(self, other: Capacity) -> Capacity:
        """Return what is left of this capacity once `other` is taken (may go negative); the
        GPUs left have the memory they had."""
        names = set(self.resources) | set(other.resources)
        return Capacity(
            cpus=self.cpus - other.cpus,
            memory=self.memory - other.memory,
            gpus=self.gpus - other.gpus,
            workspace=self.workspace - other.workspace,
            resources={
                name: self.resources.get(name, 0) - other.resources.get(name, 0) for name in names
            },
            gpu_memory=self.gpu_memory,
        )


@dataclass(frozen=True)
class Demand:
    """What one task takes from a node while it runs."""

    capacity: Capacity
    requires: frozenset[str] = frozenset()
    exclusive: bool = False

    @classmethod
    def of(cls, task: Task, defaults: Limits | None = None) -> Demand:
        """The demand of `task`, with unset limits taken from the node's `defaults`.

        A task with no cpu limit and no default takes one cpu: it runs on at least one.
        """
        limits = task.limits.with_defaults(defaults or Limits())
        return cls(
            capacity=Capacity(
                cpus=limits.cpus or 1,
                memory=limits.memory or 0,
                gpus=limits.gpus or 0,
                workspace=limits.workspace or 0,
                resources=dict(task.resources),
                gpu_memory=limits.gpu_memory or 0,
            ),
            requires=frozenset(task.requires),
            exclusive=bool(task.exclusive),
        )

    def clamped(self, cores: int) -> Demand:
        """This demand with at most `cores` cpus.

        A task asking more cores than the largest node has runs on that node's cores, as the
        original ran it, instead of waiting for a node that will never come: the server clamps
        to the largest registered node's cores, the foreman to its own, the worker to the cores
        it may use. The result's ``limits.cpus`` then says how many it got.
        """
        if self.capacity.cpus <= cores or cores < 1:
            return self
        return dataclasses.replace(self, capacity=dataclasses.replace(self.capacity, cpus=cores))

    def booking(self, capacity: Capacity) -> Capacity:
        """What the task takes from a node of `capacity`: all of it for an exclusive task, so
        that nothing starts beside it."""
        return capacity if self.exclusive else self.capacity

    def misfit(self, free: Capacity, tags: frozenset[str], *, idle: bool) -> str | None:
        """Why the task cannot start on a node with `free` capacity and `tags` now, or `None`.

        `idle` says whether the node runs nothing else; an exclusive task needs that.
        """
        missing_tags = self.requires - tags
        if missing_tags:
            return f"node lacks tags {', '.join(sorted(missing_tags))}"
        if self.exclusive and not idle:
            return "exclusive task needs an idle node"
        need = self.capacity
        for name, wanted, available in (
            ("cpus", need.cpus, free.cpus),
            ("memory", need.memory, free.memory),
            ("gpus", need.gpus, free.gpus),
            ("workspace", need.workspace, free.workspace),
        ):
            if wanted > available:
                return f"needs {name} {wanted}, {max(available, 0)} free"
        for name, wanted in need.resources.items():
            if wanted > free.resources.get(name, 0):
                return f"needs resource {name} x{wanted}, {free.resources.get(name, 0)} free"
        if need.gpu_memory > free.gpu_memory:
            has = format_memory(free.gpu_memory) if free.gpu_memory else "none"
            return f"gpu_memory {format_memory(need.gpu_memory)} > {has}"
        return None

    def fits(self, free: Capacity, tags: frozenset[str], *, idle: bool) -> bool:
        """Whether the task can start now on a node with `free` capacity and `tags`."""
        return self.misfit(free, tags, idle=idle) is None
