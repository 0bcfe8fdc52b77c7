from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..errors import Invalid
from ..models import User
from ..params import body_object
from ..permissions import user_of
from ..serializers import MeSerializer, TokenRequestSerializer, TokenSerializer


class TokenView(APIView):
    def get_permissions(self) -> Sequence[Any]:
        return [AllowAny()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = body_object(request, {"username", "password"})
        for key in ("username", "password"):
            if not isinstance(data.get(key), str):
                raise Invalid(f"{key}: is required and must be a string", field=key)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if not isinstance(user, User) or not user.is_active:
            raise AuthenticationFailed("wrong user name or password")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key, "username": user.username, "role": user.role})

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        if isinstance(request.auth, Token):
            request.auth.delete()
        return Response(status=204)


class MeView(APIView):
    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        user = user_of(request)
        return Response({"username": user.username, "role": user.role})
