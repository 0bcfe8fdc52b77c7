"""The legacy API: the original kolejka client's endpoints (``/login/``, ``/blob/...``,
``/task/...``) and JSON shapes, beside ``/api/v1``, over the same rules and viewsets.

It signs in with the original's session and CSRF cookie, answers every body with the
original's ``"status": "OK"`` or ``"FAIL"`` (refusals keep their 4xx code and our error shape
beside ``message``), and shows tasks, results and blob references in the original's shapes
(`legacy`). The foreman's side of the original (``/queue/dequeue/``, ``POST /task/result/``) is
not served: it hands out tasks without a lease, so a foreman that dies would lose them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.contrib.auth import authenticate, login, logout
from django.middleware.csrf import get_token
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import BaseParser, FormParser
from rest_framework.request import Request
from rest_framework.response import Response

from kolejka.common import Limits

from .. import blobs, blobstore, legacy, submit, transitions
from ..errors import Conflict, Invalid, NotFound
from ..inputs import LegacyTaskRequest, TokenRequest
from ..models import FINISHED, State, User
from ..parsers import OriginalBodies, RawBytes, StrictJSONParser
from ..permissions import ANYONE, EVERYONE, READERS, SUBMITTERS, UPLOADERS, Roles, user_of
from ..serializers import (
    LegacyBlobSerializer,
    LegacyDeletedSerializer,
    LegacyResultSerializer,
    LegacySettingsSerializer,
    LegacyStatusSerializer,
    LegacyTaskSerializer,
)
from .base import GridViewSet
from .blobs import BlobViewSet, receive
from .tasks import TaskViewSet


class LegacyViewSet(GridViewSet):
    """A viewset of the legacy API: session sign-in, the original's bodies, its status key."""

    authentication_classes = (SessionAuthentication,)
    parser_classes: Sequence[type[BaseParser]] = (StrictJSONParser, FormParser)
    content_negotiation_class = OriginalBodies

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Response:
        if isinstance(response, Response) and isinstance(response.data, dict):
            failed = response.status_code >= 400
            response.data["status"] = "FAIL" if failed else "OK"
            if failed and "detail" in response.data:
                response.data["message"] = response.data["detail"]
        return super().finalize_response(request, response, *args, **kwargs)


class LegacyAuthViewSet(LegacyViewSet):
    """``/login/``, ``/logout/``, ``/settings/``: the original client's sign-in."""

    roles: ClassVar[dict[str, Roles]] = {
        "login_page": ANYONE,
        "login": ANYONE,
        "logout": ANYONE,
        "server_settings": EVERYONE,
    }

    @extend_schema(request=None, responses=LegacyStatusSerializer, auth=[])
    def login_page(self, request: Request) -> Response:
        """Nothing but the CSRF cookie the sign-in needs."""
        get_token(request._request)
        return Response({})

    @extend_schema(request=TokenRequest, responses=LegacyStatusSerializer, auth=[])
    def login(self, request: Request) -> Response:
        """Sign in: a session cookie for the name and password (a form, with the CSRF cookie
        in ``X-CSRFToken``); 400 for a wrong one."""
        SessionAuthentication().enforce_csrf(request)
        data = self.body(TokenRequest)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if not isinstance(user, User) or not user.is_active:
            raise Invalid("wrong user name or password")
        login(request._request, user)
        return Response({})

    @extend_schema(request=None, responses=LegacyStatusSerializer, auth=[])
    def logout(self, request: Request) -> Response:
        """Sign out, and set the CSRF cookie (the original client starts here)."""
        logout(request._request)
        get_token(request._request)
        return Response({})

    @extend_schema(responses=LegacySettingsSerializer)
    def server_settings(self, request: Request) -> Response:
        return Response(
            {"blob_hash_algorithm": legacy.BLOB_HASH_ALGORITHM, "limits": Limits().to_dict()}
        )


class LegacyBlobViewSet(LegacyViewSet, BlobViewSet):
    """``/blob/reference/`` and ``/blob/blob/``: uploads and downloads; a reference is the
    blob's sha256, and `blobs.readable` says who reads it."""

    parser_classes = (RawBytes,)
    roles: ClassVar[dict[str, Roles]] = {
        "upload": UPLOADERS,
        "known": UPLOADERS,
        "retrieve": EVERYONE,
    }

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        responses=LegacyBlobSerializer,
    )
    def upload(self, request: Request) -> Response:
        stored = receive(request)
        return Response({"reference": legacy.reference_document(user_of(request), stored.blob)})

    @extend_schema(request=None, responses=LegacyBlobSerializer)
    def known(self, request: Request, reference: str) -> Response:
        """A reference to content the caller may read already (404: upload it)."""
        user = user_of(request)
        blob = blobs.readable_blob(user, self.lookup())
        if blob is None or not blobstore.backend().has(blob.reference):
            raise NotFound(self.missing)
        blobs.touch([blob.reference], timezone.now())  # kept for the task about to name it
        return Response({"reference": legacy.reference_document(user, blob)})


class LegacyTaskViewSet(LegacyViewSet, TaskViewSet):
    """``/task/task/`` and ``/task/result/``: a client's own tasks and their results."""

    roles: ClassVar[dict[str, Roles]] = {
        "submit": SUBMITTERS,
        "retrieve": READERS,
        "destroy": SUBMITTERS,
        "result_get": READERS,
    }

    @extend_schema(request=LegacyTaskRequest, responses=LegacyTaskSerializer)
    def submit(self, request: Request) -> Response:
        user = user_of(request)
        item = submit.admitted(user, self.body(LegacyTaskRequest), 0)
        _, tasks = submit.submit(user, [item], batch=False, legacy=True)
        return Response({"task": legacy.task_document(tasks[0])})

    @extend_schema(responses=LegacyTaskSerializer)
    def retrieve(self, request: Request, key: str) -> Response:
        return Response({"task": legacy.task_document(self.get_object())})

    @extend_schema(responses=LegacyDeletedSerializer)
    def destroy(self, request: Request, key: str) -> Response:
        self._change(transitions.delete)
        return Response({"deleted": True})

    @extend_schema(responses=LegacyResultSerializer)
    def result_get(self, request: Request, key: str) -> Response:
        """The task's result; 404 while it has none (the original client polls on that), 409
        when it never will."""
        task = self.get_object()
        if task.state == State.DONE:
            return Response({"result": legacy.result_document(task)})
        if task.state in FINISHED:
            error = f": {task.error}" if task.error else ""
            raise Conflict(f"the task is {task.state}{error}", state=task.state)
        raise NotFound(f"the task is {task.state}, it has no result yet", state=task.state)
