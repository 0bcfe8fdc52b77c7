"""The task and result format shared by every part of kolejka. It imports no other part."""

from .errors import KolejkaError, SpecError
from .limits import Limits
from .names import RESULT_SPEC, TASK_SPEC, check_name
from .resources import Capacity, Demand
from .result import (
    CpuStats,
    GpuStats,
    MemoryStats,
    PidsStats,
    Result,
    Stats,
    load_result,
    save_result,
)
from .retry import Attempt, Backoff, RetryPolicy
from .states import TaskState
from .status import Status
from .task import Collect, FileSpec, Task, check_task_files, load_task, save_task

__all__ = [
    "RESULT_SPEC",
    "TASK_SPEC",
    "Attempt",
    "Backoff",
    "Capacity",
    "Collect",
    "CpuStats",
    "Demand",
    "FileSpec",
    "GpuStats",
    "KolejkaError",
    "Limits",
    "MemoryStats",
    "PidsStats",
    "Result",
    "RetryPolicy",
    "SpecError",
    "Stats",
    "Status",
    "Task",
    "TaskState",
    "check_name",
    "check_task_files",
    "load_result",
    "load_task",
    "save_result",
    "save_task",
]
