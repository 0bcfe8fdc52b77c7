"""The ready task folders in examples/ are valid tasks (the worker tests run them for real)."""

from pathlib import Path

import pytest

from kolejka.common import load_task

EXAMPLES = sorted(
    p.parent for p in (Path(__file__).parents[2] / "examples").glob("*/kolejka_task.json")
)


@pytest.mark.parametrize("folder", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_it_loads_every_example(folder):
    task = load_task(folder)
    assert task.image.startswith("kolejka/")


def test_it_has_the_examples_the_readme_promises():
    assert {p.name for p in EXAMPLES} >= {"uname", "forkbomb", "rambomb", "timebomb", "cpubomb"}
