"""Blobs: uploads streamed into the store, downloads streamed out, small ones bundled."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from kolejka.common.blobs import is_reference

from .. import blobs, blobstore
from ..errors import Invalid, NotFound
from ..inputs import BundleRequest
from ..models import Blob
from ..parsers import RawBytes
from ..permissions import EVERYONE, UPLOADERS, Roles, user_of
from ..serializers import BlobSerializer
from .base import GridViewSet

# What one bundle holds at most, in bytes of content: a bounded answer, built in memory.
BUNDLE_BYTES = 16 << 20


def _length(request: Request) -> int | None:
    """The announced body length; `None` for a chunked body the server has de-chunked (an ASGI
    server always has: Django reads a whole body before the view)."""
    meta = request._request.META
    raw = meta.get("CONTENT_LENGTH") or ""
    if raw:
        if not raw.isdigit():
            raise Invalid(
                f"Content-Length: must be a number of bytes (got {raw!r})", "Content-Length"
            )
        return int(raw)
    if meta.get("wsgi.input_terminated") or isinstance(request._request, ASGIRequest):
        return None
    raise Invalid("send the blob with a Content-Length header", field="Content-Length")


def receive(request: Request) -> blobs.Stored:
    """Store the blob that is the body of `request` for its user (refusing a body that is not
    raw bytes, that passes the size limit or the user's quota, or whose sha256 is not the
    ``X-Kolejka-Sha256`` it names)."""
    user = user_of(request)
    content_type = request.content_type.split(";")[0].strip()
    if content_type not in ("", "application/octet-stream"):
        raise UnsupportedMediaType(
            content_type, "send the blob's raw bytes as application/octet-stream"
        )
    expected = request.headers.get("X-Kolejka-Sha256")
    if expected is not None and not is_reference(expected):
        raise Invalid(
            f"X-Kolejka-Sha256: must be a sha256 in lower-case hex (got {expected[:80]!r})",
            field="X-Kolejka-Sha256",
        )
    length = _length(request)
    blobstore.refuse_oversize(length, settings.BLOB_MAX_SIZE)
    if length is not None and not (expected and blobs.readable(user, [expected])):
        blobs.check_quota(user, length)
    whole = length is not None or isinstance(request._request, ASGIRequest)
    stream: Any = request._request if whole else request._request.META["wsgi.input"]
    store = blobstore.backend()
    with store.receive(stream, length, settings.BLOB_MAX_SIZE, expected) as received:
        return blobs.store(user, received)


class BlobViewSet(GridViewSet):
    """``blobs/``: contents by their sha256, readable by whom `blobs.readable` says."""

    lookup_field = "reference"
    lookup_pattern = re.compile(r"[0-9a-f]{64}")
    missing = "no such blob"
    parser_classes: Sequence[type[BaseParser]] = (RawBytes,)
    roles: ClassVar[dict[str, Roles]] = {
        "create": UPLOADERS,
        "retrieve": EVERYONE,
        "bundle": EVERYONE,
    }

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[
            OpenApiParameter(
                "X-Kolejka-Sha256",
                str,
                OpenApiParameter.HEADER,
                description="the sha256 the content must have",
                pattern="^[0-9a-f]{64}$",
            )
        ],
        responses={200: BlobSerializer, 201: BlobSerializer},
    )
    def create(self, request: Request) -> Response:
        stored = receive(request)
        return Response(
            {"reference": stored.blob.reference, "size": stored.blob.size},
            status=201 if stored.new_for_user else 200,
        )

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)}
    )
    def retrieve(self, request: Request, reference: str) -> HttpResponseBase:
        """The blob's bytes (``HEAD``: only its ``Content-Length`` and ``ETag``)."""
        blob = blobs.readable_blob(user_of(request), self.lookup())
        if blob is None:
            raise NotFound(self.missing)
        if request.method == "HEAD":
            response: HttpResponseBase = HttpResponse(content_type="application/octet-stream")
        else:
            content = blobstore.backend().open(blob.reference)
            if content is None:
                raise NotFound(self.missing)
            # Streamed in blocks from the file or the object store's socket.
            response = blobstore.response(request._request, content, blob.size)
        response["Content-Length"] = str(blob.size)
        response["ETag"] = f'"{blob.reference}"'
        return response

    @extend_schema(
        request=BundleRequest,
        responses={
            (200, "application/x-tar"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="a tar of the longest prefix of the references (each once) whose "
                "contents fit in BUNDLE_BYTES, members named by reference; empty when the first "
                "does not fit (download it alone)",
            )
        },
    )
    @action(detail=False, methods=["post"], parser_classes=(JSONParser,))
    def bundle(self, request: Request) -> HttpResponseBase:
        """Many small blobs in one answer, so that fetching thousands of results is not a round
        trip per file. 404 naming the first reference the caller may not read."""
        wanted = list(dict.fromkeys(self.body(BundleRequest)["references"]))
        found = blobs.readable(user_of(request), wanted)
        for index, reference in enumerate(wanted):
            if reference not in found:
                raise NotFound(f"references[{index}]: no such blob", field=f"references[{index}]")
        sizes = dict(Blob.objects.filter(reference__in=wanted).values_list("reference", "size"))
        buffer = io.BytesIO()
        total = 0
        store = blobstore.backend()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for reference in wanted:
                size = sizes[reference]
                if total + size > BUNDLE_BYTES:
                    break
                content = store.open(reference)
                if content is None:
                    break
                member = tarfile.TarInfo(reference)
                member.size = size
                with content:
                    tar.addfile(member, content)
                total += size
        return HttpResponse(buffer.getvalue(), content_type="application/x-tar")
