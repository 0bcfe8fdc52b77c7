"""The original kolejka, installed from PyPI by name into a virtualenv of its own, and the
kolejka-judge problem of these tests (``problem/``) turned into task folders by kolejka-judge's
own ``judge.py task``.

Reusable by any test that drives the original for real: `original_venv()` gives the virtualenv
(its ``bin/`` has ``kolejka-client``, ``kolejka-worker``, ``kolejka-observer`` and
``kolejka-judge``), `judge_library()` the ``kolejka-judge`` library file judge scripts load, and
`judge_task()` / `JUDGE_SOLUTIONS` a task folder exactly as ``judge.py task`` writes it (symlinks
and all) for one of the problem's solutions.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = Path(__file__).resolve().parent / "problem"
VENV = Path(os.environ.get("KOLEJKA_ORIGINAL_VENV", ROOT / ".venv-original"))
# The original's packages as published; pinned so that a test run is repeatable.
PACKAGES = (
    "kolejkacommon==0.1.202603031436",
    "kolejkaclient==0.1.202603031436",
    "kolejkaworker==0.1.202603031436",
    "kolejkaobserver==0.1.202603031436",
    "kolejkajudge==0.1.202603081438",
)
JUDGE_IMAGE = "kolejka/judge:latest"
# Each solution of the problem and the verdict kolejka-judge gives it on each test.
JUDGE_SOLUTIONS = {
    "correct.cpp": {"small": "OK", "three": "OK", "large": "OK"},
    "wrong.cpp": {"small": "OK", "three": "ANS", "large": "OK"},
    "loop.cpp": {"small": "TLE", "three": "TLE", "large": "TLE"},
}
# Hostile solutions, judged on the first test only.
HOSTILE_SOLUTIONS = {"forkbomb.cpp": "TLE", "membomb.cpp": "MEM", "escape.cpp": "OK"}


def original_venv() -> Path:
    """The virtualenv with the original packages, made on first use (pip, by package name)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs may make it at once
        stamp = VENV / "kolejka-original.txt"
        if not stamp.exists() or stamp.read_text() != "\n".join(PACKAGES):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "--disable-pip-version-check", *PACKAGES], check=True)
            stamp.write_text("\n".join(PACKAGES))
    return VENV


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


def judge_library(folder: Path) -> Path:
    """The ``kolejka-judge`` library file in `folder`: a zip of the original's ``kolejka.judge``,
    ``kolejka.common`` and ``kolejka.observer`` packages, which judge scripts put on
    ``sys.path`` (what ``judge.py update`` downloads from the original's site)."""
    packages = site_packages(original_venv()) / "kolejka"
    library = folder / "kolejka-judge"
    with zipfile.ZipFile(library, "w") as archive:
        # zipimport finds no namespace packages: make `kolejka` a plain one inside the zip.
        archive.writestr("kolejka/__init__.py", "")
        for package in ("judge", "common", "observer"):
            for path in sorted((packages / package).rglob("*.py")):
                archive.write(path, str(path.relative_to(packages.parent)))
    library.chmod(0o755)
    return library


def judge_task(
    work: Path, solution: str, name: str | None = None, tests: tuple[str, ...] = ()
) -> Path:
    """A task folder for `solution` (a file of ``problem/solutions``) in `work` (which holds
    the library, `judge_library`), made by kolejka-judge's own ``judge.py task`` with the
    original's python: symlinks to the problem's files. `tests` picks some of the tests
    (``--test``), all by default."""
    library = work / "kolejka-judge"
    task = work / (name or Path(solution).stem)
    python = original_venv() / "bin" / "python"
    subprocess.run(
        [
            str(python),
            str(PROBLEM / "judge.py"),
            "task",
            "--library-path",
            str(library),
            *(f"--test={test}" for test in tests),
            str(PROBLEM / "tests" / "tests.yaml"),
            str(PROBLEM / "solutions" / solution),
            str(task),
        ],
        check=True,
        capture_output=True,
    )
    return task


def verdicts(result_dir: Path) -> dict[str, str]:
    """kolejka-judge's verdict on each test, from the ``results/results.yaml`` it wrote."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!file", lambda loader, node: loader.construct_scalar(node))
    results = yaml.load((result_dir / "results" / "results.yaml").read_text(), Loader=Loader)
    return {str(test): result["satori"]["status"] for test, result in results.items()}


def assert_judged(result_dir: Path, solution: str, expected: dict[str, str] | None = None) -> None:
    """`result_dir` holds kolejka-judge's verdicts on `solution` (`expected`, or those of
    `JUDGE_SOLUTIONS`), as the original gives them, with the judge's collected files:
    ``results.yaml``, and each test's logs (a zip of the commands it ran) through the symlink
    kolejka-judge made to them."""
    expected = expected or JUDGE_SOLUTIONS[solution]
    assert verdicts(result_dir) == expected
    console = (result_dir / "console_stdout.txt").read_text().splitlines()
    assert console == [f"Result {status} on test {test}." for test, status in expected.items()]
    for test in expected:
        logs = result_dir / "results" / test / "satori" / "logs" / "log.zip"
        assert not logs.is_symlink(), "a collected symlink must be collected as its file"
        with zipfile.ZipFile(logs) as archive:
            names = archive.namelist()
        assert any(name.endswith("_io_executor_run_cmd.txt") for name in names), names
