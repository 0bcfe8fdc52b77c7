"""Fixtures of the kolejka-judge tests: this run's sandbox and observer (as the worker tests'),
the judge image, and the grid of the foreman tests."""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..foreman.conftest import make_grid  # noqa: F401  (a fixture of these tests too)
from ..worker.helpers import ROOT, Sandbox, start_observer, test_images
from .original import JUDGE_IMAGE, judge_library


@pytest.fixture(scope="session")
def judge_sandbox() -> Iterator[Sandbox]:
    with test_images(), tempfile.TemporaryDirectory(prefix="kolejka-judge-test-") as temp:
        found = subprocess.run(["docker", "image", "inspect", JUDGE_IMAGE], capture_output=True)
        if found.returncode != 0:
            subprocess.run([str(ROOT / "images" / "build")], check=True)
        sandbox = Sandbox(Path(temp))
        yield sandbox
        sandbox.remove_bases()


@pytest.fixture
def judge_clean(judge_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, proven empty after the test: no container, cgroup, mount or temp dir."""
    yield judge_sandbox
    judge_sandbox.assert_clean()


@pytest.fixture(scope="session")
def judge_observer(judge_sandbox: Sandbox) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kolejka-observer-") as folder:
        path = Path(folder) / "observer.sock"
        base = f"{judge_sandbox.cgroup_base}-observer-{secrets.token_hex(2)}"
        with start_observer(path, base):
            yield path


@pytest.fixture(scope="session")
def judge_work() -> Iterator[Path]:
    """A folder for task folders made by ``judge.py task``, holding the judge library."""
    with tempfile.TemporaryDirectory(prefix="kolejka-judge-tasks-") as folder:
        judge_library(Path(folder))
        yield Path(folder)
