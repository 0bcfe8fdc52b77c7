from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ...models import User
from . import _users


class Command(BaseCommand):
    help = "Change a user's password, role or quota; --disable/--enable their access."

    def add_arguments(self, parser: ArgumentParser) -> None:
        _users.add_arguments(parser, required=False)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--disable", action="store_true", help="refuse the user's logins")
        group.add_argument("--enable", action="store_true", help="allow the user's logins")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            user = User.objects.filter(username=options["name"]).first()
            if user is None:
                raise CommandError(f"no user {options['name']!r}; add it with adduser")
            _users.apply(user, options)
            if options["disable"] or options["enable"]:
                user.is_active = bool(options["enable"])
            user.save()
        self.stderr.write(f"changed {user.role} {user.username}")
