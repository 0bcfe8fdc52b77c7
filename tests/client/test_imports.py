"""What ``kolejka-client`` imports: a command pays only for the modules it needs (each costs its
interpreter start), and the public names still come from ``kolejka.client``."""

from __future__ import annotations

import json
import subprocess
import sys

import kolejka.client
from kolejka.client import blobs, client

# Imported by the commands that need them only: YAML parameter files, progress bars; the docker
# SDK never by a client.
NOT_FOR_EXECUTE = ("yaml", "tqdm", "docker")


def _imported_by(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_it_imports_for_execute_only_what_execute_needs() -> None:
    loaded = _imported_by(
        "from kolejka.client.cli import build_parser\n"
        "build_parser().parse_args(['execute', 'task', 'result'])"
    )
    assert "requests" in loaded  # the one it needs: it talks to the server
    assert not loaded & set(NOT_FOR_EXECUTE)


def test_it_imports_no_http_library_for_the_errors_and_settings() -> None:
    loaded = _imported_by("from kolejka.client import ClientError, LeaseLost, load_settings")
    assert "requests" not in loaded


def test_it_exports_every_public_name_from_its_module() -> None:
    for name in kolejka.client.__all__:
        value = getattr(kolejka.client, name)
        assert value is not None and name in dir(kolejka.client)
    assert kolejka.client.KolejkaClient is client.KolejkaClient
    assert kolejka.client.ProgressFactory is blobs.ProgressFactory


def test_it_refuses_an_unknown_name() -> None:
    try:
        kolejka.client.NoSuchName  # noqa: B018
    except AttributeError as error:
        assert "NoSuchName" in str(error)
    else:
        raise AssertionError("an unknown name was found")
