"""What a task needs of a node besides numbers: the tags it requires and the named resources it
takes, as one canonical text (`Task.needs`), ``""`` for none.

Tasks of one owner and priority that need the same are one queue of the claim's index
(`claims.py`): a claim lists the distinct needs among queued tasks, judges each against its
node here, and reads only the queues its node can run. So however many queued tasks need a tag
no node has, a claim reads none of them, and the numbers (cpus, memory, ...) are compared in
SQL by the ``need_*`` columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kolejka.common import Capacity


def key(requires: Iterable[str], resources: Mapping[str, int]) -> str:
    """The canonical text of needing `requires` and `resources`; equal needs, equal texts."""
    if not requires and not resources:
        return ""
    return json.dumps(
        {"requires": sorted(set(requires)), "resources": dict(sorted(resources.items()))},
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class Needs:
    requires: frozenset[str]
    resources: Mapping[str, int]

    @classmethod
    def of(cls, text: str) -> Needs:
        """The needs `key` wrote as `text`."""
        if not text:
            return cls(frozenset(), {})
        data = json.loads(text)
        return cls(frozenset(data["requires"]), dict(data["resources"]))

    def met(self, tags: frozenset[str], room: Capacity) -> bool:
        """Whether a node with `tags` and `room` has all of it (`Demand.misfit` has the final
        word on the rest)."""
        return self.requires <= tags and all(
            count <= room.resources.get(name, 0) for name, count in self.resources.items()
        )
