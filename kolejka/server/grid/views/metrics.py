"""``/metrics``: Prometheus' text format, for inspectors and admins."""

from __future__ import annotations

from typing import ClassVar

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.request import Request

from .. import metrics
from ..permissions import OPERATORS, Roles
from .base import GridViewSet


class MetricsViewSet(GridViewSet):
    """Prometheus scrapes it with an inspector's token (``authorization: {type: Token,
    credentials: ...}`` in its scrape configuration)."""

    roles: ClassVar[dict[str, Roles]] = {"list": OPERATORS}

    @extend_schema(exclude=True)  # not JSON, and not under /api/v1/
    def list(self, request: Request) -> HttpResponse:
        return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
