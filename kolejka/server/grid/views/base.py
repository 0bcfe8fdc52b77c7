"""The base of the API's viewsets. How to add an endpoint: docs/api.md, "Adding an endpoint"."""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from ..errors import NotFound
from ..permissions import ByAction, Roles

S = TypeVar("S", bound=serializers.BaseSerializer[Any])


class GridViewSet(viewsets.GenericViewSet[Any]):
    """A viewset of the grid's API.

    `roles` names, per action, the roles that may call it (`permissions.ByAction`). Requests
    are read with `body` and `query` through the strict serializers of `inputs`, which the schema
    names too (``extend_schema(request=..., parameters=[...])``). A lookup value (a task key, a
    node name) that `lookup_pattern` does not match is a 404 without a query. Every answer says
    the server's longest long-poll in ``Kolejka-Max-Wait``.
    """

    permission_classes = (ByAction,)
    roles: ClassVar[dict[str, Roles]] = {}
    lookup_value_regex = "[^/]+"
    lookup_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9._-]{1,64}")
    missing: ClassVar[str] = "no such object"

    def lookup(self) -> str:
        """The lookup value of the URL; `NotFound` if it cannot name anything."""
        value = str(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        if not self.lookup_pattern.fullmatch(value):
            raise NotFound(self.missing)
        return value

    def body(self, serializer: type[serializers.BaseSerializer[Any]]) -> Any:
        """The request body, validated by `serializer`; 400 naming the field if not valid."""
        return self._valid(serializer, self.request.data)

    def query(self, serializer: type[serializers.BaseSerializer[Any]]) -> Any:
        """The query string, validated by `serializer`; 400 naming the parameter if not valid."""
        return self._valid(serializer, self.request.query_params)

    def _valid(self, serializer: type[serializers.BaseSerializer[Any]], data: Any) -> Any:
        checked = serializer(data=data, context=self.get_serializer_context())
        checked.is_valid(raise_exception=True)
        return checked.validated_data

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Response:
        answer = super().finalize_response(request, response, *args, **kwargs)
        answer["Kolejka-Max-Wait"] = f"{settings.MAX_WAIT:g}"
        return answer
