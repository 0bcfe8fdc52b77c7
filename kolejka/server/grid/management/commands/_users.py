"""What `adduser` and `setuser` share: reading a password and applying a role."""

from __future__ import annotations

import sys
from argparse import ArgumentParser

from django.core.management.base import CommandError

from kolejka.common import SpecError
from kolejka.common.units import parse_memory

from ...models import Role, User


def add_arguments(parser: ArgumentParser, *, required: bool) -> None:
    parser.add_argument("name", help="the user name")
    parser.add_argument(
        "--password", required=required, help="the password; '-' reads it from standard input"
    )
    parser.add_argument(
        "--role", choices=[str(role) for role in Role], required=required, help="the user's role"
    )
    parser.add_argument(
        "--quota", help="bytes of blobs the user may store, e.g. 10G (default KOLEJKA_USER_QUOTA)"
    )


def password(value: str) -> str:
    if value == "-":
        value = sys.stdin.readline().rstrip("\n")
    if not value:
        raise CommandError("the password must not be empty")
    return value


def apply(user: User, options: dict[str, object]) -> None:
    if options.get("password") is not None:
        user.set_password(password(str(options["password"])))
    if options.get("role") is not None:
        user.role = Role(str(options["role"]))
        # Admins manage the grid through Django's admin too.
        user.is_staff = user.is_superuser = user.role == Role.ADMIN
    if options.get("quota") is not None:
        try:
            user.quota = parse_memory(options["quota"], "--quota")
        except SpecError as error:
            raise CommandError(str(error)) from None
