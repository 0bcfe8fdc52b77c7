"""System checks for what the settings cannot refuse by themselves."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def data_folder(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
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
