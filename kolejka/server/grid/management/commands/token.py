from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from ...models import User


class Command(BaseCommand):
    help = "Print a user's API token (made if missing), e.g. for a foreman's configuration."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="the user name")
        parser.add_argument("--renew", action="store_true", help="revoke the old token first")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["name"]).first()
        if user is None:
            raise CommandError(f"no user {options['name']!r}; add it with adduser")
        if options["renew"]:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
