from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Server, Template, serve
from .s3 import S3, moto_server


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Template]]:
    root = tmp_path_factory.mktemp("kolejka-server")
    made: dict[str, Template] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, backend: str) -> Template:
            made[backend] = self[backend] = Template(backend, root)
            return made[backend]

    yield Lazy()
    for template in made.values():
        template.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server on SQLite, the default set-up."""
    with serve(templates["sqlite"], tmp_path / "data") as running:
        yield running


@pytest.fixture(scope="module")
def shared(
    templates: dict[str, Template], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One SQLite server for a module's tests that change nothing (bad input, refusals)."""
    with serve(templates["sqlite"], tmp_path_factory.mktemp("shared") / "data") as running:
        yield running


@pytest.fixture
def grid(templates: dict[str, Template], backend: str, tmp_path: Path) -> Iterator[Server]:
    """A server on each database backend in turn."""
    with serve(templates[backend], tmp_path / "data") as running:
        yield running


@pytest.fixture
def short_leases(templates: dict[str, Template], backend: str, tmp_path: Path) -> Iterator[Server]:
    """A server whose leases last one second and whose tasks get two attempts, the second at
    once and on any node (retry spacing has its own tests)."""
    with serve(
        templates[backend],
        tmp_path / "data",
        KOLEJKA_LEASE_TTL="1s",
        KOLEJKA_MAX_ATTEMPTS="2",
        KOLEJKA_RETRY_DELAY="0s",
        KOLEJKA_RETRY_AVOID="0s",
    ) as running:
        yield running


@pytest.fixture
def quick_retries(templates: dict[str, Template], backend: str, tmp_path: Path) -> Iterator[Server]:
    """A server that lets any node retry a failed task at once (no spacing, no avoidance)."""
    with serve(
        templates[backend], tmp_path / "data", KOLEJKA_RETRY_DELAY="0s", KOLEJKA_RETRY_AVOID="0s"
    ) as running:
        yield running


@pytest.fixture
def small_blobs(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server taking blobs of at most 1 KiB, and 2 KiB of them per user."""
    with serve(
        templates["sqlite"],
        tmp_path / "data",
        KOLEJKA_BLOB_MAX_SIZE="1K",
        KOLEJKA_USER_QUOTA="2K",
        KOLEJKA_JSON_MAX_SIZE="64K",
    ) as running:
        yield running


@pytest.fixture
def notifying(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server on SQLite that may send webhooks to 127.0.0.1 (the tests' receivers)."""
    with serve(templates["sqlite"], tmp_path / "data", KOLEJKA_NOTIFY_ALLOW="127.0.0.1") as running:
        yield running


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """One S3 server on loopback for the session (each server gets a bucket of its own)."""
    with moto_server() as running:
        yield running


@pytest.fixture(params=["disk", "s3"])
def store(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings of each blob store in turn."""
    if request.param == "disk":
        return {}
    settings: dict[str, str] = request.getfixturevalue("s3").settings()
    return settings


@pytest.fixture
def stored(
    templates: dict[str, Template], store: dict[str, str], tmp_path: Path
) -> Iterator[Server]:
    """A server on SQLite with each blob store in turn."""
    with serve(templates["sqlite"], tmp_path / "data", **store) as running:
        yield running


@pytest.fixture
def small_stored(
    templates: dict[str, Template], store: dict[str, str], tmp_path: Path
) -> Iterator[Server]:
    """`small_blobs` with each blob store in turn."""
    with serve(
        templates["sqlite"],
        tmp_path / "data",
        KOLEJKA_BLOB_MAX_SIZE="1K",
        KOLEJKA_USER_QUOTA="2K",
        **store,
    ) as running:
        yield running
