"""Logging in and out, and who the caller is."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.response import Response

from ..inputs import TokenRequest
from ..models import User
from ..permissions import ANYONE, EVERYONE, Roles, user_of
from ..serializers import MeSerializer, TokenSerializer
from .base import GridViewSet


class AuthViewSet(GridViewSet):
    """``auth/``: a token for a name and password, logging out, and the caller's account."""

    roles: ClassVar[dict[str, Roles]] = {"token": ANYONE, "logout": EVERYONE, "me": EVERYONE}

    @extend_schema(
        operation_id="auth_token_create",
        request=TokenRequest,
        responses=TokenSerializer,
        auth=[],
    )
    @action(detail=False, methods=["post"])
    def token(self, request: Request) -> Response:
        data = self.body(TokenRequest)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if not isinstance(user, User) or not user.is_active:
            raise AuthenticationFailed("wrong user name or password")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key, "username": user.username, "role": user.role})

    @extend_schema(operation_id="auth_token_destroy", request=None, responses={204: None})
    @token.mapping.delete
    def logout(self, request: Request) -> Response:
        """Revoke the token of the request."""
        if isinstance(request.auth, Token):
            request.auth.delete()
        return Response(status=204)

    @extend_schema(responses=MeSerializer)
    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        user = user_of(request)
        return Response({"username": user.username, "role": user.role})
