"""Periodic tasks: a client's own schedules; inspectors read everyone's, admins change them."""

from __future__ import annotations

from typing import ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import schedules
from ..errors import Forbidden, NotFound
from ..inputs import ScheduleRequest
from ..models import Schedule
from ..permissions import READERS, SUBMITTERS, Roles, may_change, user_of
from ..serializers import SchedulePageSerializer, ScheduleSerializer
from .base import GridViewSet


class ScheduleViewSet(GridViewSet):
    """``schedules/``: periodic tasks, each tick queued as an ordinary task of its owner."""

    lookup_field = "key"
    missing = "no such schedule"
    roles: ClassVar[dict[str, Roles]] = {
        "list": READERS,
        "create": SUBMITTERS,
        "retrieve": READERS,
        "pause": SUBMITTERS,
        "resume": SUBMITTERS,
        "destroy": SUBMITTERS,
    }

    def get_queryset(self) -> QuerySet[Schedule]:
        user = user_of(self.request)
        found = Schedule.objects.select_related("owner").order_by("id")
        return found if user.sees_everything else found.filter(owner=user)

    def get_object(self) -> Schedule:
        """The schedule of the URL if the caller may see it; 404 for anyone else's."""
        schedule = self.get_queryset().filter(key=self.lookup()).first()
        if schedule is None:
            raise NotFound(self.missing)
        return schedule

    def _changed(self) -> Schedule:
        schedule = self.get_object()
        if not may_change(user_of(self.request), schedule.owner_id):
            raise Forbidden(
                "inspectors read schedules; only their owner or an admin may change them"
            )
        return schedule

    @extend_schema(responses=SchedulePageSerializer)
    def list(self, request: Request) -> Response:
        return Response({"results": ScheduleSerializer(self.get_queryset(), many=True).data})

    @extend_schema(request=ScheduleRequest, responses={201: ScheduleSerializer})
    def create(self, request: Request) -> Response:
        data = self.body(ScheduleRequest)
        schedule = schedules.create(
            user_of(request), data["cron"], data["task"], data["priority"], data["missed"]
        )
        return Response(ScheduleSerializer(schedule).data, status=201)

    @extend_schema(responses=ScheduleSerializer)
    def retrieve(self, request: Request, key: str) -> Response:
        return Response(ScheduleSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, key: str) -> Response:
        schedule = self._changed()
        schedules.pause(schedule)
        return Response(ScheduleSerializer(self.get_queryset().get(pk=schedule.pk)).data)

    @extend_schema(request=None, responses=ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, key: str) -> Response:
        schedule = self._changed()
        schedules.resume(schedule)
        return Response(ScheduleSerializer(self.get_queryset().get(pk=schedule.pk)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, key: str) -> Response:
        """Remove the schedule; the runs it queued stay."""
        self._changed().delete()
        return Response(status=204)
