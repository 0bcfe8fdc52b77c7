from __future__ import annotations

import os
import shutil
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings as django_settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from kolejka.server.secret import install_key
from kolejka.server.settings import db_pool_size


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from kolejka.server.asgi import application

        return application


class _Worker(UvicornWorker):  # type: ignore[misc]
    """A uvicorn worker for Django: no lifespan protocol; a stop waits a few seconds for the
    requests in flight, then cancels them (a waiting claim takes nothing)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "lifespan": "off",
        "timeout_graceful_shutdown": 3,
    }


def _metrics_folder() -> None:
    """One folder for the metrics of this server's workers (`grid/metrics.py`), emptied of an
    earlier run's; prometheus_client reads it when it is first imported, which must be later."""
    if "prometheus_client" in sys.modules:
        raise CommandError("internal: prometheus_client was imported before its folder was set")
    folder = Path(django_settings.DATA) / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


class Command(BaseCommand):
    help = (
        "Serve the API in production: gunicorn with uvicorn (ASGI) workers, in which a waiting "
        "long-poll holds no thread. Every option is also an environment variable."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--bind",
            default=os.environ.get("KOLEJKA_BIND", "127.0.0.1:8000"),
            help="address to listen on, or fd://N (KOLEJKA_BIND, default 127.0.0.1:8000)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=django_settings.WORKERS,
            help="processes (KOLEJKA_WORKERS, default 2)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=django_settings.POLL_THREADS,
            help="threads of each process that run the long-polls' checks: how many run at once, "
            "at most the database pool (KOLEJKA_THREADS, default half the database pool)",
        )
        parser.add_argument(
            "--access-log", action="store_true", help="log every request to standard error"
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        # Before the system checks, and before gunicorn forks its workers.
        install_key()
        _metrics_folder()
        return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["workers"] < 1 or options["threads"] < 1:
            raise CommandError("--workers and --threads must be at least 1")
        self._budget(options["workers"])
        # A check holds a connection of the pool: more threads than connections would only
        # queue in the pool (up to KOLEJKA_DB_WAIT) instead of answering 503 at once.
        threads = options["threads"]
        if "postgresql" in str(django_settings.DATABASES["default"]["ENGINE"]):
            threads = min(threads, django_settings.DB_POOL_SIZE)
        django_settings.POLL_THREADS = threads
        settings = {
            "bind": [options["bind"]],
            "workers": options["workers"],
            "worker_class": _Worker,
            # Longer than the longest long-poll; it guards against hung workers only.
            "timeout": max(120, int(django_settings.MAX_WAIT) + 60),
            "graceful_timeout": 30,
            "keepalive": 75,
            "accesslog": "-" if options["access_log"] else None,
            "errorlog": "-",
            "proc_name": "kolejka-server",
            # Several servers may run on one machine; gunicorn's shared control socket is unused.
            "control_socket_disable": True,
        }
        _Gunicorn(settings).run()

    def _budget(self, workers: int) -> None:
        """Split the connection budget across `workers`, and refuse one PostgreSQL cannot take
        (kolejka.E004). Before the fork: the workers inherit the pool's size, not its sockets."""
        django_settings.WORKERS = workers
        django_settings.DB_POOL_SIZE = db_pool_size(workers)
        options: Any = django_settings.DATABASES["default"].get("OPTIONS", {})
        pool = options.get("pool")
        if isinstance(pool, dict):
            pool["max_size"] = django_settings.DB_POOL_SIZE
        self.check(tags=[Tags.database], databases=["default"])
        for connection in connections.all():
            connection.close()
            if hasattr(connection, "close_pool"):
                connection.close_pool()
