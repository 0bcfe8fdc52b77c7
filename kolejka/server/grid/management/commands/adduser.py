from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ...models import User
from . import _users


class Command(BaseCommand):
    help = "Add a user with a password and a role (client, foreman, inspector or admin)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        _users.add_arguments(parser, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            if User.objects.filter(username=options["name"]).exists():
                raise CommandError(
                    f"user {options['name']!r} exists; change it with "
                    f"`kolejka-server setuser {options['name']} --role ... --password ...`"
                )
            user = User(username=options["name"])
            _users.apply(user, options)
            user.save()
        self.stderr.write(f"added {user.role} {user.username}")
