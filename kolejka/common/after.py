"""Dependencies between submissions: a task waits for other tasks or batches to end (``after``),
as Slurm's ``afterok`` / ``afterany`` / ``afternotok``. The server, the client and the command
line read them from here.

One dependency is ``{"key": KEY, "when": WHEN}`` (a task's or a sealed batch's key), or, inside
one batch submission, ``{"position": N, "when": WHEN}`` (the batch's task at position N, 0 for
the first). The short form is a string: ``"KEY"``, ``"WHEN:KEY"``, ``"#N"``, ``"WHEN:#N"``.
WHEN is ``ok`` unless given:

- ``ok``: the dependency ended ``done`` with an ``OK`` verdict;
- ``notok``: it ended any other way (done with another verdict, failed, cancelled);
- ``any``: it ended, however.

A batch ends when every one of its tasks has; it is ``ok`` when all of them are, ``notok`` when
at least one is not. A dependency that can no longer be met cancels its dependent.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import SpecError

MAX_AFTER = 100
KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")


class When(enum.StrEnum):
    OK = "ok"
    ANY = "any"
    NOTOK = "notok"

    def met(self, succeeded: bool) -> bool:
        """Whether a dependency that ended (`succeeded`: done with an OK verdict) meets this."""
        if self == When.ANY:
            return True
        return succeeded == (self == When.OK)


@dataclass(frozen=True)
class After:
    """One dependency: on the task or batch `key`, or on the task at `position` of the same
    batch submission (exactly one of the two is set)."""

    when: When = When.OK
    key: str | None = None
    position: int | None = None

    def to_dict(self) -> dict[str, object]:
        named: dict[str, object] = (
            {"key": self.key} if self.key is not None else {"position": self.position}
        )
        return {**named, "when": str(self.when)}

    def __str__(self) -> str:
        return f"{self.when}:{self.key if self.key is not None else f'#{self.position}'}"

    @classmethod
    def from_dict(cls, data: object, field: str = "after") -> After:
        """One dependency in the long or the short form; `SpecError` naming `field` otherwise."""
        if isinstance(data, str):
            when, _, named = data.rpartition(":")
            data = {"when": when or "ok", **_named(named, field, data)}
        if not isinstance(data, dict):
            raise SpecError(field, data, 'a dependency is "[WHEN:]KEY" or {"key", "when"}')
        unknown = set(data) - {"key", "position", "when"}
        if unknown:
            raise SpecError(field, data, f"unknown field {sorted(unknown)[0]!r}")
        try:
            when = When(data.get("when", "ok"))
        except ValueError:
            raise SpecError(f"{field}.when", data.get("when"), "ok, any or notok") from None
        key, position = data.get("key"), data.get("position")
        if (key is None) == (position is None):
            raise SpecError(field, data, "give a key or a position, one of them")
        if key is not None and (not isinstance(key, str) or not KEY.fullmatch(key)):
            raise SpecError(f"{field}.key", key, "a task's or a batch's key")
        if position is not None and (
            isinstance(position, bool) or not isinstance(position, int) or position < 0
        ):
            raise SpecError(f"{field}.position", position, "a position in the batch, from 0")
        return cls(when, key, position)


def _named(named: str, field: str, given: str) -> dict[str, object]:
    if named.startswith("#"):
        if not named[1:].isdigit():
            raise SpecError(field, given, "#N names the batch's task at position N")
        return {"position": int(named[1:])}
    return {"key": named}


def parse_after(data: object, field: str = "after") -> tuple[After, ...]:
    """A list of dependencies (`After.from_dict` each), at most `MAX_AFTER`, none twice."""
    if not isinstance(data, list):
        raise SpecError(field, data, "a list of dependencies")
    if len(data) > MAX_AFTER:
        raise SpecError(field, len(data), f"at most {MAX_AFTER} dependencies")
    found = tuple(After.from_dict(item, f"{field}[{index}]") for index, item in enumerate(data))
    if len(set(found)) != len(found):
        raise SpecError(field, data, "a dependency is given twice")
    return found
