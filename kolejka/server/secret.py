"""Django's secret key (it signs the admin's sessions; API tokens do not depend on it).

Where it comes from, first found wins: ``KOLEJKA_SECRET_KEY``; the file ``KOLEJKA_SECRET_KEY_FILE``
names (a secret mounted for every server of a grid); the data folder's ``secret_key``. Reading
writes nothing. ``kolejka-server migrate`` and ``serve`` make the data folder's key when no key
is given, so that one machine needs no set-up; servers on several machines must be given one key.
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


def install_key() -> None:
    """Make the data folder, and make sure this process's settings hold a key (`ensure_key`)."""
    from django.conf import settings

    settings.DATA.mkdir(parents=True, exist_ok=True)
    if not settings.SECRET_KEY_SOURCE:
        settings.SECRET_KEY = ensure_key(settings.DATA)
        settings.SECRET_KEY_SOURCE = "data"
