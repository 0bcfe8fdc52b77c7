"""Who may call what: each viewset names, per action, the roles that may call it (`roles`), and
refuses an action its table does not name. Which objects an action reaches is the viewset's
lookup (a client's own tasks, a foreman's own nodes and leases); what the caller may do to an
object it can see is `may_change`. docs/api.md has the whole table; tests/server/test_matrix.py
proves every cell of it."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .models import Role, User

Roles = frozenset[Role]

EVERYONE: Roles = frozenset(Role)


class Anyone(frozenset[Role]):
    """Everyone, also without credentials (logging in, the schema)."""


ANYONE: Roles = Anyone()
ADMINS: Roles = frozenset({Role.ADMIN})
SUBMITTERS: Roles = frozenset({Role.CLIENT, Role.ADMIN})
READERS: Roles = frozenset({Role.CLIENT, Role.INSPECTOR, Role.ADMIN})
FOREMEN: Roles = frozenset({Role.FOREMAN, Role.ADMIN})
OPERATORS: Roles = frozenset({Role.INSPECTOR, Role.ADMIN})
UPLOADERS: Roles = frozenset({Role.CLIENT, Role.FOREMAN, Role.ADMIN})


def user_of(request: Request) -> User:
    """The authenticated user of `request` (views run only after `ByAction` admitted it)."""
    user = request.user
    assert isinstance(user, User)
    return user


def may_change(user: User, owner_id: int) -> bool:
    """Whether `user` may change (cancel, retry, delete) a thing of the user `owner_id`:
    its owner and admins may; inspectors only read."""
    return user.pk == owner_id or user.role == Role.ADMIN


class ByAction(BasePermission):
    """Admit an active user whose role is in ``view.roles[view.action]`` (`ANYONE`: everyone,
    also anonymous). An action missing from the table is refused: a new action is closed until
    its roles are written down."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if view.action is None:
            return True  # a method the URL does not have: 405, whoever asks
        user = request.user
        allowed = view.roles.get(view.action)
        if isinstance(allowed, Anyone):
            return True
        if allowed is None or not isinstance(user, User) or not user.is_active:
            return False
        if user.role not in allowed:
            self.message = f"this needs the role {' or '.join(sorted(allowed))}"
            return False
        return True
