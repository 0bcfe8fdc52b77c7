"""System checks for what the settings cannot refuse by themselves."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from kolejka.server.secret import ENV, FILE_ENV


@register()
def data_folder(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    data = settings.DATA
    if not data.exists():
        return problems
    if not os.access(data, os.W_OK):
        problems.append(
            Error(
                f"the data folder {data} is not writable",
                hint="set KOLEJKA_DATA to a folder the server's user may write",
                id="kolejka.E001",
            )
        )
    if settings.BLOB_MAX_SIZE > settings.USER_QUOTA:
        problems.append(
            Warning(
                "KOLEJKA_BLOB_MAX_SIZE is larger than KOLEJKA_USER_QUOTA: such a blob always "
                "fails with 507",
                hint="raise KOLEJKA_USER_QUOTA or lower KOLEJKA_BLOB_MAX_SIZE",
                id="kolejka.W001",
            )
        )
    return problems


@register()
def secret_key(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.SECRET_KEY_SOURCE:
        return []
    return [
        Error(
            "the server has no secret key",
            hint=f"set {ENV} or {FILE_ENV}, or run `kolejka-server migrate`, which makes one in "
            f"{settings.DATA}",
            id="kolejka.E002",
        )
    ]


@register(deploy=True)
def shared_secret_key(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    shared = str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")
    if not shared or settings.SECRET_KEY_SOURCE != "data":
        return []
    return [
        Warning(
            "the secret key is this machine's own (KOLEJKA_DATA/secret_key), but the database "
            "may be shared by servers on other machines",
            hint=f"give every server of the grid the same key: {ENV} or {FILE_ENV}",
            id="kolejka.W002",
        )
    ]
