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

from .. import deliver
from ..inputs import TokenRequest
from ..models import User
from ..permissions import ANYONE, EVERYONE, SUBMITTERS, Roles, user_of
from ..serializers import MeSerializer, TokenSerializer, WebhookSecretSerializer
from .base import GridViewSet


class AuthViewSet(GridViewSet):
    """``auth/``: a token for a name and password, logging out, and the caller's account."""

    roles: ClassVar[dict[str, Roles]] = {
        "token": ANYONE,
        "logout": EVERYONE,
        "me": EVERYONE,
        "webhook_secret": SUBMITTERS,
        "rotate_webhook_secret": SUBMITTERS,
    }

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

    @extend_schema(responses=WebhookSecretSerializer)
    @action(detail=False, methods=["get"], url_path="webhook-secret")
    def webhook_secret(self, request: Request) -> Response:
        """The key that signs your webhooks (made on first use)."""
        found = deliver.secret_of(user_of(request).pk)
        return Response({"secret": found.secret, "created": found.created})

    @extend_schema(
        operation_id="auth_webhook_secret_rotate", request=None, responses=WebhookSecretSerializer
    )
    @webhook_secret.mapping.post
    def rotate_webhook_secret(self, request: Request) -> Response:
        """A new key for your webhooks: what is sent from now on is signed with it."""
        found = deliver.rotate(user_of(request).pk)
        return Response({"secret": found.secret, "created": found.created})
