"""Fixtures of the kolejka-judge tests: the worker tests' sandbox and observer, the grid of the
foreman tests, the judge image, and a folder for judge task folders."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..foreman.conftest import make_grid  # noqa: F401  (fixtures of these tests too)
from ..worker.conftest import clean, observer, sandbox  # noqa: F401
from ..worker.helpers import ROOT, Sandbox
from .original import JUDGE_IMAGE, judge_library


@pytest.fixture(scope="session")
def judge_image(sandbox: Sandbox) -> str:  # noqa: F811
    """The judge image, built if this machine has none yet."""
    found = subprocess.run(["docker", "image", "inspect", JUDGE_IMAGE], capture_output=True)
    if found.returncode != 0:
        subprocess.run([str(ROOT / "images" / "build")], check=True)
    return JUDGE_IMAGE


@pytest.fixture(scope="session")
def judge_work(judge_image: str) -> Iterator[Path]:
    """A folder for task folders made by ``judge.py task``, holding the judge library."""
    with tempfile.TemporaryDirectory(prefix="kolejka-judge-tasks-") as folder:
        judge_library(Path(folder))
        yield Path(folder)
