"""The node's books: what is free, and which cores and GPUs each running task holds.

Tasks run side by side, so each gets its own cores (a cpuset) and GPUs. The foreman claims with
`free()` and then `reserve`s each task it got here; the server bounds a claim by the node's open
leases, so two claims never count the same core.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from kolejka.common import Capacity, Demand
from kolejka.worker import Placement


class Ledger:
    """Thread-safe accounts of a node's capacity and of the cores and GPUs in use."""

    def __init__(
        self, capacity: Capacity, tags: frozenset[str], cores: Sequence[int], gpus: Sequence[int]
    ) -> None:
        if len(cores) < capacity.cpus or len(gpus) < capacity.gpus:
            raise ValueError("capacity names more cores or GPUs than the node has")
        self._lock = threading.Lock()
        self._capacity = capacity
        self._tags = tags
        self._free_cores = sorted(cores)[: capacity.cpus]
        self._free_gpus = sorted(gpus)[: capacity.gpus]
        self._taken: list[Capacity] = []

    def _left(self) -> Capacity:
        left = self._capacity
        for taken in self._taken:
            left = left.minus(taken)
        return left

    def free(self) -> Capacity:
        """What is left for another task now."""
        with self._lock:
            return self._left()

    @property
    def idle(self) -> bool:
        """Whether no task holds anything (an exclusive task needs that)."""
        with self._lock:
            return not self._taken

    def reserve(self, demand: Demand) -> Placement | None:
        """Take `demand` and the lowest free cores and GPUs for it; `None` if it does not fit.

        An exclusive task is booked as taking the whole node, so nothing starts beside it.
        """
        with self._lock:
            if not demand.fits(self._left(), self._tags, idle=not self._taken):
                return None
            need = demand.capacity
            placement = Placement(
                cpus=tuple(self._free_cores[: need.cpus]), gpus=tuple(self._free_gpus[: need.gpus])
            )
            del self._free_cores[: need.cpus]
            del self._free_gpus[: need.gpus]
            self._taken.append(demand.booking(self._capacity))
            return placement

    def release(self, demand: Demand, placement: Placement) -> None:
        """Give back what `reserve` took for `demand`."""
        with self._lock:
            self._taken.remove(demand.booking(self._capacity))
            self._free_cores = sorted(self._free_cores + list(placement.cpus))
            self._free_gpus = sorted(self._free_gpus + list(placement.gpus))
