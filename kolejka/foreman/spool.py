"""Results waiting for the server, kept on disk so that an outage or a restart loses none."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kolejka.common import SpecError
from kolejka.common.jsonfile import read_json, write_json


@dataclass(frozen=True)
class Spooled:
    """A result folder for the task `task_key`, to be reported under lease `lease_id`."""

    lease_id: str
    task_key: str
    result_dir: Path


class Spool:
    """A folder of results not yet accepted by the server, oldest first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def put(self, lease_id: str, task_key: str, result_dir: Path) -> Spooled:
        """Move `result_dir` into the spool under `lease_id` and return its entry."""
        entry = self.root / lease_id
        entry.mkdir()
        target = entry / "result"
        shutil.move(result_dir, target)
        write_json(entry / "lease.json", {"lease_id": lease_id, "task_key": task_key})
        return Spooled(lease_id, task_key, target)

    def pending(self) -> list[Spooled]:
        """The spooled results, oldest first. A half-written entry (no lease.json) is skipped."""
        entries = []
        for entry in self.root.iterdir():
            try:  # another thread may be removing it
                data = read_json(entry / "lease.json", "lease.json")
                mtime = entry.stat().st_mtime
            except (SpecError, FileNotFoundError):
                continue
            entries.append((mtime, Spooled(data["lease_id"], data["task_key"], entry / "result")))
        return [spooled for _, spooled in sorted(entries, key=lambda item: item[0])]

    def remove(self, spooled: Spooled) -> None:
        """Forget a result: the server has it, or refused it for good."""
        shutil.rmtree(self.root / spooled.lease_id, ignore_errors=True)
