"""kolejka's client: `KolejkaClient` (the server's HTTP API in Python) and ``kolejka-client``.

The names below are imported on first use (PEP 562): a command, or the foreman reading its
settings, pays only for the modules it needs, and ``from kolejka.client import KolejkaClient``
works as ever.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kolejka.common.states import TaskState

    from .blobs import Blob, ProgressBar, ProgressFactory
    from .client import KolejkaClient, TaskCancelled, TaskFailed, WaitTimeout
    from .config import Settings, load_settings
    from .errors import (
        ApiError,
        AuthenticationFailed,
        BadRequest,
        ClientError,
        ConfigError,
        Conflict,
        ConnectionFailed,
        LeaseLost,
        LocalFileError,
        NotFinished,
        NotFound,
        PermissionDenied,
        QuotaExceeded,
        ServerError,
        StorageFull,
        Throttled,
        TooLarge,
        TransferError,
    )
    from .logs import LogPart
    from .models import (
        Account,
        Batch,
        BatchProgress,
        Claim,
        Delivery,
        Heartbeat,
        Image,
        Lease,
        Node,
        NodeVerdict,
        QueueStats,
        TaskInfo,
        Why,
    )

__all__ = [
    "Account",
    "ApiError",
    "AuthenticationFailed",
    "BadRequest",
    "Batch",
    "BatchProgress",
    "Blob",
    "Claim",
    "ClientError",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "Delivery",
    "Heartbeat",
    "Image",
    "KolejkaClient",
    "Lease",
    "LeaseLost",
    "LocalFileError",
    "LogPart",
    "Node",
    "NodeVerdict",
    "NotFinished",
    "NotFound",
    "PermissionDenied",
    "ProgressBar",
    "ProgressFactory",
    "QueueStats",
    "QuotaExceeded",
    "ServerError",
    "Settings",
    "StorageFull",
    "TaskCancelled",
    "TaskFailed",
    "TaskInfo",
    "TaskState",
    "Throttled",
    "TooLarge",
    "TransferError",
    "WaitTimeout",
    "Why",
    "load_settings",
]

# Where the names are looked for, cheapest first: a name is imported with the modules before
# its own, which the later ones import anyway.
_MODULES = (
    ".errors",
    "kolejka.common.states",
    ".models",
    ".config",
    ".logs",
    ".client",
    ".blobs",
)


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module in _MODULES:
            found = importlib.import_module(module, __name__)
            if hasattr(found, name):
                value = getattr(found, name)
                globals()[name] = value  # looked up here once only
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
