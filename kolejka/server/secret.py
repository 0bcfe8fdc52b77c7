"""Django's secret key (it signs the admin's sessions; API tokens do not depend on it).

Where it comes from, first found wins: ``KOLEJKA_SECRET_KEY``; the file ``KOLEJKA_SECRET_KEY_FILE``
names (a secret mounted for every server of a grid); on PostgreSQL, the database, which every
server on it shares (`shared_key`); the data folder's ``secret_key``. Reading the settings
writes nothing and reads no database: ``kolejka-server migrate`` and ``serve`` make the data
folder's key when no key is given and, on PostgreSQL, take the database's (`install_key`), so
that neither one machine nor a grid of several needs set-up.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ENV = "KOLEJKA_SECRET_KEY"
FILE_ENV = "KOLEJKA_SECRET_KEY_FILE"
DATA_FILE = "secret_key"


def secret_key(data: Path) -> tuple[str, str]:
    """The key and where it came from (``env``, ``file``, ``data``), or ``("", "")``."""
    given = os.environ.get(ENV)
    if given:
        return given, "env"
    named = os.environ.get(FILE_ENV)
    if named:
        try:
            key = Path(named).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{FILE_ENV}: cannot read {named}: {error}") from None
        if not key:
            raise ImproperlyConfigured(f"{FILE_ENV}: the file {named} is empty")
        return key, "file"
    try:
        return (data / DATA_FILE).read_text().strip(), "data"
    except FileNotFoundError:
        return "", ""


def ensure_key(data: Path) -> str:
    """The key `secret_key` finds, after making the data folder's (mode 600) if none is given.

    ``O_EXCL``: when two processes start at once, one writes and both read the same key.
    """
    key, _ = secret_key(data)
    if key:
        return key
    data.mkdir(parents=True, exist_ok=True)
    path = data / DATA_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")
    return path.read_text().strip()


def shared_key(proposed: str) -> str:
    """The key kept in the database: the first server to ask puts `proposed` there (its data
    folder's, so that a server that had one keeps its sessions), every later one gets that.
    Two servers asking at once: the primary key lets one insert, and the other reads its row."""
    from kolejka.server.grid.models import GridSecret

    secret, _ = GridSecret.objects.get_or_create(id=1, defaults={"key": proposed})
    return secret.key


def install_key() -> None:
    """Make the data folder, and make sure this process's settings hold the key: the one given,
    else on a migrated PostgreSQL database `shared_key`, else the data folder's (`ensure_key`)."""
    from django.conf import settings
    from django.db import connection

    from kolejka.server.grid.models import GridSecret

    settings.DATA.mkdir(parents=True, exist_ok=True)
    if settings.SECRET_KEY_SOURCE in ("env", "file"):
        return
    if settings.SECRET_KEY_SOURCE != "data":
        settings.SECRET_KEY = ensure_key(settings.DATA)
        settings.SECRET_KEY_SOURCE = "data"
    if connection.vendor != "postgresql":
        return
    # Before the first migration there is no table yet: migrate runs on the data folder's key.
    if GridSecret._meta.db_table in connection.introspection.table_names():
        settings.SECRET_KEY = shared_key(settings.SECRET_KEY)
        settings.SECRET_KEY_SOURCE = "database"
