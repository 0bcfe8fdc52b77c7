from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import blobs, blobstore
from ..errors import Invalid, NotFound
from ..models import Role
from ..permissions import roles, user_of
from ..serializers import BlobSerializer
from .negotiation import RawBytes

UPLOADERS = roles(Role.CLIENT, Role.FOREMAN, Role.ADMIN)


def _length(request: Request) -> int | None:
    """The announced body length; `None` for a chunked body the server has de-chunked."""
    meta = request._request.META
    raw = meta.get("CONTENT_LENGTH") or ""
    if raw:
        if not raw.isdigit():
            raise Invalid(
                f"Content-Length: must be a number of bytes (got {raw!r})", "Content-Length"
            )
        return int(raw)
    if meta.get("wsgi.input_terminated"):
        return None
    raise Invalid("send the blob with a Content-Length header", field="Content-Length")


class BlobUploadView(APIView):
    permission_classes = (UPLOADERS,)
    parser_classes = (RawBytes,)

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[
            OpenApiParameter(
                "X-Kolejka-Sha256", str, OpenApiParameter.HEADER, description="expected sha256"
            )
        ],
        responses={200: BlobSerializer, 201: BlobSerializer},
    )
    def post(self, request: Request) -> Response:
        user = user_of(request)
        content_type = request.content_type.split(";")[0].strip()
        if content_type not in ("", "application/octet-stream"):
            raise UnsupportedMediaType(
                content_type, "send the blob's raw bytes as application/octet-stream"
            )
        expected = request.headers.get("X-Kolejka-Sha256")
        if expected is not None and not blobstore.is_reference(expected):
            raise Invalid(
                f"X-Kolejka-Sha256: must be a sha256 in lower-case hex (got {expected!r})",
                field="X-Kolejka-Sha256",
            )
        length = _length(request)
        blobstore.refuse_oversize(length, settings.BLOB_MAX_SIZE)
        if length is not None and not (expected and blobs.readable(user, [expected])):
            blobs.check_quota(user, length)
        stream: Any = (
            request._request if length is not None else request._request.META["wsgi.input"]
        )
        with blobstore.receive(stream, length, settings.BLOB_MAX_SIZE, expected) as received:
            stored = blobs.store(user, received)
        return Response(
            {"reference": stored.blob.reference, "size": stored.blob.size},
            status=201 if stored.new_for_user else 200,
        )


class BlobView(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
        }
    )
    def get(self, request: Request, reference: str) -> HttpResponseBase:
        blob = blobs.readable_blob(user_of(request), reference)
        if blob is None or not blobstore.has_file(blob.reference):
            raise NotFound("no such blob")
        response = FileResponse(
            blobstore.open_blob(blob.reference), content_type="application/octet-stream"
        )
        response["ETag"] = f'"{blob.reference}"'
        return response

    def head(self, request: Request, reference: str) -> HttpResponseBase:
        blob = blobs.readable_blob(user_of(request), reference)
        if blob is None:
            raise NotFound("no such blob")
        response = HttpResponse(content_type="application/octet-stream")
        response["Content-Length"] = str(blob.size)
        response["ETag"] = f'"{blob.reference}"'
        return response
