"""Production servers for the server benchmarks: the test harness's `kolejka-server serve`
(gunicorn, ASGI workers) on a fresh SQLite or PostgreSQL database."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.server.harness import Server, Template, serve

BACKENDS = ("sqlite", "postgres")


@contextmanager
def servers(backends: tuple[str, ...], **settings: str) -> Iterator[dict[str, Server]]:
    """One server per backend, of two processes."""
    if "postgres" in backends:
        os.environ.setdefault(
            "KOLEJKA_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres"
        )
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as root:
        templates = {backend: Template(backend, Path(root)) for backend in backends}
        try:
            running: dict[str, Server] = {}
            stack = []
            for backend in backends:
                context = serve(
                    templates[backend],
                    Path(root) / f"data-{backend}",
                    workers=2,
                    **settings,
                )
                running[backend] = context.__enter__()
                stack.append(context)
            try:
                yield running
            finally:
                for context in reversed(stack):
                    context.__exit__(None, None, None)
        finally:
            for template in templates.values():
                template.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
