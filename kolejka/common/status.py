"""`Status`: the verdict on a run, which results carry and retry policies name."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """The verdict on a run. Only `SYSTEM_ERROR` blames the platform rather than the task."""

    OK = "OK"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    TIME_LIMIT = "TIME_LIMIT"
    CPU_TIME_LIMIT = "CPU_TIME_LIMIT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SYSTEM_ERROR = "SYSTEM_ERROR"
