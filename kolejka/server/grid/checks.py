"""System checks for what the settings cannot refuse by themselves."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections

from kolejka.server.secret import ENV, FILE_ENV

from . import blobstore


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


@register()
def blob_store(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problem = blobstore.backend().problem()
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="create the bucket, or check KOLEJKA_S3_BUCKET, KOLEJKA_S3_ENDPOINT and the "
            "AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            id="kolejka.E003",
        )
    ]


def connection_budget_of(workers: int, pool: int) -> int:
    """PostgreSQL connections one `serve` opens at most: each worker's pool and listener."""
    return workers * (pool + 1)


@register(Tags.database)
def connection_budget(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """This server's connection budget against what PostgreSQL takes from ordinary users
    (``max_connections`` less the reserved ones); run with ``check --database default`` and by
    ``serve`` before it starts its workers."""
    databases = kwargs.get("databases") or ()
    connection = connections["default"]
    if "default" not in databases or connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
            " + coalesce(current_setting('reserved_connections', true), '0')::int"
        )
        row = cursor.fetchone()
    assert row is not None
    available = int(row[0]) - int(row[1])
    budget = connection_budget_of(settings.WORKERS, settings.DB_POOL_SIZE)
    if budget <= available:
        return []
    return [
        Error(
            f"this server may open {budget} PostgreSQL connections ({settings.WORKERS} workers "
            f"x (a pool of {settings.DB_POOL_SIZE} + 1 listener)), but PostgreSQL takes only "
            f"{available} (max_connections {row[0]} less {row[1]} reserved)",
            hint="lower KOLEJKA_DB_CONNECTIONS (or KOLEJKA_DB_POOL_SIZE, KOLEJKA_WORKERS), or "
            "raise max_connections; all servers of a grid together must fit",
            id="kolejka.E004",
        )
    ]
