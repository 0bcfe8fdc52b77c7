"""The root of kolejka's exceptions, and the error raised for an invalid task or result."""

from __future__ import annotations


class KolejkaError(Exception):
    """Something kolejka cannot do; the message says what and, where it can, how to fix it."""


class SpecError(KolejkaError, ValueError):
    """A task or result field holds a value the format does not allow.

    `field` is the dotted path of the field (``limits.memory``, ``files.a/b.path``),
    `value` the offending value as given, `problem` what is wrong with it.
    """

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field}: {problem} (got {value!r})")
