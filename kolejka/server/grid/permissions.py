"""Who may call what: each API view names the roles it serves."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .models import Role, User


def user_of(request: Request) -> User:
    """The authenticated user of `request` (views run only after `IsAuthenticated`)."""
    user = request.user
    assert isinstance(user, User)
    return user


def roles(*allowed: Role) -> type[BasePermission]:
    """A permission admitting authenticated users whose role is one of `allowed`."""

    class HasRole(BasePermission):
        message = f"this needs the role {' or '.join(allowed)}"

        def has_permission(self, request: Request, view: Any) -> bool:
            user = request.user
            return isinstance(user, User) and user.is_active and user.role in allowed

    HasRole.__name__ = "Is" + "Or".join(role.capitalize() for role in allowed)
    return HasRole


SUBMITTERS = roles(Role.CLIENT, Role.ADMIN)
FOREMEN = roles(Role.FOREMAN, Role.ADMIN)
ADMINS = roles(Role.ADMIN)
