from __future__ import annotations

from typing import Any

from django.core.management.commands import migrate

from kolejka.server.secret import install_key


class Command(migrate.Command):
    help = (
        "Django's migrate; also makes the data folder's secret key when none is given "
        "(KOLEJKA_SECRET_KEY, KOLEJKA_SECRET_KEY_FILE)."
    )

    def execute(self, *args: Any, **options: Any) -> Any:
        install_key()
        return super().execute(*args, **options)
