"""Stored images and the queue's statistics."""

from __future__ import annotations

from typing import ClassVar

from django.db import transaction
from django.db.models import Count
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import blobs
from ..errors import Invalid
from ..inputs import ImageQuery, ImageRequest
from ..models import Blob, Image, Lease, Node, Role, State, Task
from ..permissions import ADMINS, EVERYONE, Roles, user_of
from ..serializers import ImagePageSerializer, ImageSerializer, StatsSerializer
from .base import GridViewSet


class ImageViewSet(GridViewSet):
    """``images/``: ``docker save`` tarballs stored as blobs under image names (admins store)."""

    roles: ClassVar[dict[str, Roles]] = {"list": EVERYONE, "upsert": ADMINS}

    @extend_schema(parameters=[ImageQuery], responses=ImagePageSerializer)
    def list(self, request: Request) -> Response:
        name = self.query(ImageQuery).get("name")
        images = Image.objects.select_related("blob").order_by("name")
        if name:
            images = images.filter(name=name)
        return Response({"results": ImageSerializer(images, many=True).data})

    @extend_schema(operation_id="images_update", request=ImageRequest, responses=ImageSerializer)
    def upsert(self, request: Request) -> Response:
        """Store the blob `reference` as the image `name` (replacing what it named)."""
        data = self.body(ImageRequest)
        name, reference = data["name"], data["reference"]
        if not name.strip():
            raise Invalid("name: must name a docker image", field="name")
        if not blobs.readable(user_of(request), [reference]):
            raise Invalid(
                f"reference: no such blob; upload it first (got {reference!r})", "reference"
            )
        with transaction.atomic():
            blob = Blob.objects.get(reference=reference)
            image, _ = Image.objects.update_or_create(name=name, defaults={"blob": blob})
        return Response(ImageSerializer(image).data)


class QueueViewSet(GridViewSet):
    """``queue/stats/``: counts by state (a client's own tasks) and, for the others, the nodes."""

    roles: ClassVar[dict[str, Roles]] = {"stats": EVERYONE}

    @extend_schema(responses=StatsSerializer)
    @action(detail=False, methods=["get"])
    def stats(self, request: Request) -> Response:
        user = user_of(request)
        tasks = Task.objects.all()
        if user.role == Role.CLIENT:
            tasks = tasks.filter(owner=user)
        counts = dict(tasks.values("state").annotate(n=Count("id")).values_list("state", "n"))
        oldest = tasks.filter(state=State.QUEUED).order_by("id").values_list("created", flat=True)
        nodes = {}
        if user.role != Role.CLIENT:
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
                "states": {str(state): counts.get(state, 0) for state in State},
                "nodes": nodes,
                "oldest_queued": oldest.first(),
            }
        )
