from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import blobs
from ..errors import Invalid
from ..models import Blob, Image, Lease, Node, State, Task
from ..params import body_object
from ..permissions import ADMINS, user_of
from ..serializers import (
    ImagePageSerializer,
    ImageRequestSerializer,
    ImageSerializer,
    StatsSerializer,
)


class QueueStatsView(APIView):
    @extend_schema(responses={200: StatsSerializer})
    def get(self, request: Request) -> Response:
        user = user_of(request)
        tasks = Task.objects.all()
        if user.role == "client":
            tasks = tasks.filter(owner=user)
        counts = dict(tasks.values("state").annotate(n=Count("id")).values_list("state", "n"))
        oldest = tasks.filter(state=State.QUEUED).order_by("id").values_list("created", flat=True)
        nodes = {}
        if user.role != "client":
            running = dict(
                Lease.objects.filter(ended=None)
                .values("node_id")
                .annotate(n=Count("id"))
                .values_list("node_id", "n")
            )
            nodes = {
                node.name: {"running": running.get(node.pk, 0), "last_seen": node.last_seen}
                for node in Node.objects.order_by("name")
            }
        return Response(
            {
                "states": {state: counts.get(state, 0) for state in State},
                "nodes": nodes,
                "oldest_queued": oldest.first(),
            }
        )


class ImagesView(APIView):
    def get_permissions(self) -> Sequence[Any]:
        return [ADMINS()] if self.request.method == "PUT" else super().get_permissions()

    @extend_schema(parameters=[OpenApiParameter("name", str)], responses={200: ImagePageSerializer})
    def get(self, request: Request) -> Response:
        images = Image.objects.select_related("blob").order_by("name")
        if request.query_params.get("name"):
            images = images.filter(name=request.query_params["name"])
        return Response({"results": ImageSerializer(images, many=True).data})

    @extend_schema(request=ImageRequestSerializer, responses={200: ImageSerializer})
    def put(self, request: Request) -> Response:
        data = body_object(request, {"name", "reference"})
        name, reference = data.get("name"), data.get("reference")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise Invalid("name: must name a docker image", field="name")
        if not isinstance(reference, str) or not blobs.readable(user_of(request), [reference]):
            raise Invalid(
                f"reference: no such blob; upload it first (got {reference!r})", "reference"
            )
        with transaction.atomic():
            blob = Blob.objects.get(reference=reference)
            image, _ = Image.objects.update_or_create(name=name, defaults={"blob": blob})
        return Response(ImageSerializer(image).data)
