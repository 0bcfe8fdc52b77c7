"""What can go wrong talking to a kolejka server, as `KolejkaError` subclasses.

HTTP failures are translated here, at the boundary, so callers never see a `requests` exception
or a raw status code. Each class says who is to blame through `exit_code`, which the command line
uses as its exit status (`exits`): `USAGE` for a mistake of the caller (fix the input and try
again), `PLATFORM` for the server or the network (try again later).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kolejka.common import KolejkaError

from .exits import PLATFORM, USAGE


class ClientError(KolejkaError):
    """The client could not do what was asked; the message says why and what to do.

    `subject` names what the failed request was about (``task t-1``) where the message does not.
    """

    exit_code: ClassVar[int] = USAGE
    subject: str | None = None


class ConfigError(ClientError):
    """The configuration is missing a setting or holds a bad value."""


class LocalFileError(ClientError):
    """A local file or folder cannot be read or written (missing, a symlink, no permission)."""


class TransferError(ClientError):
    """A transfer went wrong on the way: content that does not match its reference, a download
    that kept breaking off."""

    exit_code: ClassVar[int] = PLATFORM


class ConnectionFailed(ClientError):
    """The server could not be reached (after retries)."""

    exit_code: ClassVar[int] = PLATFORM


class ApiError(ClientError):
    """The server refused a request. `status`, `code`, `detail` and `field` are from its answer."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        field: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.body: Mapping[str, Any] = body or {}
        super().__init__(self.describe())

    def describe(self) -> str:
        # The server's detail usually starts with the field already ("limits.memory: ...").
        if self.field and not self.detail.startswith(self.field.split(".", 1)[-1]):
            return f"{self.field}: {self.detail}"
        return self.detail


class BadRequest(ApiError):
    """400: the request (a task, a field) is invalid; `field` names it where one is at fault."""


class AuthenticationFailed(ApiError):
    """401: no credentials, a wrong name or password, or a revoked token."""


class PermissionDenied(ApiError):
    """403: the user's role may not do this."""


class NotFound(ApiError):
    """404: no such task, blob or node (or it is not the caller's)."""


class Conflict(ApiError):
    """409: the thing is not in a state that allows this (already done, already has a result)."""


class LeaseLost(Conflict):
    """409 ``lease_lost``: the lease expired or was taken over; kill the task's copy."""


class NotFinished(Conflict):
    """409 ``not_finished``: the task has no result yet; `body["state"]` is its state."""


class TooLarge(ApiError):
    """413: the upload is larger than the server takes."""


class Throttled(ApiError):
    """429: too many requests (after retries)."""

    exit_code: ClassVar[int] = PLATFORM


class QuotaExceeded(ApiError):
    """507: the user's storage quota is used up."""


class StorageFull(ApiError):
    """507 ``insufficient_storage``: the server's disk is full (not the caller's quota)."""

    exit_code: ClassVar[int] = PLATFORM


class ServerError(ApiError):
    """5xx: the server failed (after retries)."""

    exit_code: ClassVar[int] = PLATFORM


_BY_CODE: dict[str, type[ApiError]] = {
    "lease_lost": LeaseLost,
    "not_finished": NotFinished,
    "insufficient_storage": StorageFull,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: Throttled,
    507: QuotaExceeded,
}


def api_error(status: int, body: object, reason: str = "") -> ApiError:
    """The exception for an error answer with HTTP `status` and (parsed JSON) `body`."""
    document: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    code = str(document.get("code") or reason or status)
    detail = document.get("detail")
    if not isinstance(detail, str) or not detail:
        detail = f"the server answered HTTP {status} {reason}".rstrip()
    field = document.get("field")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(status, code, detail, field if isinstance(field, str) else None, document)
