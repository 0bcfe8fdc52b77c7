"""`kolejka-server`: Django's management command line on kolejka's settings.

``kolejka-server migrate``, ``runserver``, ``serve`` (production, gunicorn), ``adduser``,
``setuser``, ``token``, ``reap``, ``runschedules``, ``collectblobs``, ``check --deploy``, ...
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kolejka.server.settings")
    try:
        import django  # noqa: F401
    except ImportError:
        sys.exit('kolejka-server: the server is not installed here: pip install "kolejka[server]"')
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["kolejka-server", *(sys.argv[1:] if argv is None else argv)])
    except ImproperlyConfigured as error:
        # A bad setting is the operator's to fix: one line naming it, no traceback.
        sys.exit(f"kolejka-server: {error}")
