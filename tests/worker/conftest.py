"""Fixtures of the worker tests: a per-run sandbox checked for leftovers after every test."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Runner, Sandbox, start_observer, test_images


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with test_images(), tempfile.TemporaryDirectory(prefix="kolejka-test-") as temp:
        sandbox = Sandbox(Path(temp))
        yield sandbox
        sandbox.remove_bases()


@pytest.fixture
def clean(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, proven empty after the test: no container, cgroup, mount or temp dir."""
    yield sandbox
    sandbox.assert_clean()


@pytest.fixture
def run(clean: Sandbox, tmp_path: Path) -> Runner:
    """Run tasks in-process without an observer (``accounting: cgroup``)."""
    return Runner(tmp_path, clean.config())


@pytest.fixture(scope="session")
def observer(sandbox: Sandbox) -> Iterator[Path]:
    """A ``kolejka-observer`` daemon for the whole run; yields its socket."""
    with tempfile.TemporaryDirectory(prefix="kolejka-observer-") as folder:
        path = Path(folder) / "observer.sock"
        # Unique per daemon: a daemon sweeps its base when it starts.
        base = f"{sandbox.cgroup_base}-observer-{secrets.token_hex(2)}"
        with start_observer(path, base):
            yield path


@pytest.fixture(params=["cgroup", "observer"])
def any_run(request: pytest.FixtureRequest, clean: Sandbox, tmp_path: Path) -> Runner:
    """Run tasks both without and with an observer."""
    if request.param == "observer":
        socket = request.getfixturevalue("observer")
        return Runner(tmp_path, clean.config(observer=str(socket)))
    return Runner(tmp_path, clean.config())
