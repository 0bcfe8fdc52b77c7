"""The API's one error shape, ``{"code", "detail", "field"}``, for every error it answers.

Known faults of the machine answer in that shape too instead of a 500: a database that cannot be
reached is 503 ``unavailable`` with ``Retry-After`` (clients wait and repeat), a full disk under
the blob store is 507 ``insufficient_storage``, and a value the database refuses is 400.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any

from django import db
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from kolejka.common import SpecError


class ApiError(exceptions.APIException):
    """An API error with an optional `field` at fault and `extra` keys for the body."""

    def __init__(self, detail: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.field = field
        self.extra = extra


class Invalid(ApiError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class LeaseLost(Conflict):
    default_code = "lease_lost"


class NotFinished(Conflict):
    default_code = "not_finished"


class TooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class QuotaExceeded(ApiError):
    status_code = status.HTTP_507_INSUFFICIENT_STORAGE
    default_code = "quota_exceeded"


class StorageFull(ApiError):
    status_code = status.HTTP_507_INSUFFICIENT_STORAGE
    default_code = "insufficient_storage"


class Unavailable(ApiError):
    """The server cannot serve now (its database is unreachable); `wait` is ``Retry-After``."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    wait = 2


log = logging.getLogger(__name__)


def known_fault(error: Exception) -> ApiError | None:
    """The API error for a fault of the machine that is not a bug, or `None`."""
    if isinstance(error, db.DataError):
        return Invalid(f"the database refused a value of the request: {str(error)[:200]}")
    if isinstance(error, db.OperationalError | db.InterfaceError):
        log.warning("the database is unreachable: %s", error)
        return Unavailable("the server cannot reach its database; try again in a moment")
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("the server's storage is full: %s", error)
        return StorageFull(
            "the server's storage is full; try again later, or ask its operator to free space"
        )
    return None


def _first(detail: Any, path: str) -> tuple[str, str, str]:
    """The first leaf of a DRF error detail: (field path, message, code)."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        if key == "non_field_errors":
            return _first(value, path)
        if isinstance(key, int):  # an item of a list (DRF's ListSerializer keys them by index)
            return _first(value, f"{path}[{key}]")
        return _first(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if item:
                inner = path if not isinstance(item, dict | list) else f"{path}[{index}]"
                return _first(item, inner)
        return path, "invalid", "invalid"
    return path, str(detail), getattr(detail, "code", None) or "invalid"


def _printable(value: Any) -> Any:
    """`value` safe to write as UTF-8 JSON: a lone surrogate (or a NUL) that came with the
    request is shown escaped instead of breaking the answer that names it."""
    if not isinstance(value, str):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def error_body(error: exceptions.APIException) -> dict[str, Any]:
    """The one JSON shape of `error`."""
    return {key: _printable(value) for key, value in _error_body(error).items()}


def _error_body(error: exceptions.APIException) -> dict[str, Any]:
    if isinstance(error, ApiError):
        body: dict[str, Any] = {"code": error.default_code, "detail": str(error.detail)}
        if error.field:
            body["field"] = error.field
        body.update(error.extra)
        return body
    if isinstance(error, exceptions.ValidationError):
        field, message, code = _first(error.detail, "")
        body = {"code": "invalid" if code != "parse_error" else code, "detail": message}
        if field:
            body["detail"] = f"{field}: {message}"
            body["field"] = field
        return body
    codes = error.get_codes()
    code = codes if isinstance(codes, str) else error.default_code
    return {"code": code, "detail": str(error.detail)}


def exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler: every known error becomes the one JSON shape; others are 500s."""
    if isinstance(error, SpecError):
        error = Invalid(str(error), field=error.field)
    elif isinstance(error, Http404):
        error = NotFound("not found")
    elif isinstance(error, DjangoPermissionDenied):
        error = Forbidden("permission denied")
    elif isinstance(error, RequestDataTooBig):
        error = TooLarge("the request body is too large; send files as blobs")
    elif isinstance(error, SuspiciousOperation):
        error = Invalid(str(error) or "bad request")
    error = known_fault(error) or error
    if not isinstance(error, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if isinstance(error, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        view = context.get("view")
        request = context.get("request")
        authenticate = view.get_authenticate_header(request) if view and request else None
        if authenticate:
            headers["WWW-Authenticate"] = authenticate
    wait = getattr(error, "wait", None)
    if wait:
        headers["Retry-After"] = str(int(wait))
    return Response(error_body(error), status=error.status_code, headers=headers)


def _json_error(code: str, detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status_code)


# Django's own error views (unknown URLs, bad Host headers, crashes), in the same shape.


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error("invalid", "bad request", 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error("permission_denied", "permission denied", 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error("not_found", f"no such URL: {request.path}", 404)


class KnownFaults:
    """Middleware: the known faults of requests outside the API's views (the admin site) in the
    one shape as well."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        fault = known_fault(exception)
        if fault is None:
            return None
        response = JsonResponse(error_body(fault), status=fault.status_code)
        if isinstance(fault, Unavailable):
            response["Retry-After"] = str(fault.wait)
        return response


def server_error(request: HttpRequest) -> JsonResponse:
    return _json_error("server_error", "the server failed; the log has the details", 500)
