"""kolejka-judge's task folders, exactly as its ``judge.py task`` writes them (symlinks to the
problem's files), run by ``kolejka-worker execute`` with an observer: the per-test verdicts of
the original (kolejka-judge's own), with its results and logs collected."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kolejka.common import Status, load_result

from .original import (
    HOSTILE_SOLUTIONS,
    JUDGE_IMAGE,
    JUDGE_SOLUTIONS,
    assert_judged,
    judge_task,
    verdicts,
)

BIN = Path(sys.executable).parent


def worker(sandbox, observer: Path, task: Path, result: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(str(BIN / "kolejka-worker"), "execute", "--observer", str(observer)),
            *("--root-images", "kolejka/judge:*", "--temp-dir", str(sandbox.temp_dir)),
            *("--cgroup-base", sandbox.cgroup_base, str(task), str(result)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("solution", sorted(JUDGE_SOLUTIONS))
def test_it_judges_a_kolejka_judge_task_as_the_original(
    clean, observer, judge_work, tmp_path, solution
):
    task = judge_task(judge_work, solution, name=f"{solution}-{tmp_path.name}")
    assert (task / "solution" / solution).is_symlink()
    done = worker(clean, observer, task, tmp_path / "result")
    assert done.returncode == 0, done.stderr
    result = load_result(tmp_path / "result")
    assert result.status is Status.OK, result.to_dict()
    assert result.limits.root is True
    assert_judged(tmp_path / "result", solution)


def test_the_expected_verdicts_are_kolejka_judges_own(sandbox, judge_work, tmp_path):
    """The verdicts the tests expect are the ones kolejka-judge itself gives, run by its own
    ``judge.py execute --local`` in plain containers of the judge image, one per solution, one
    after the other, as its time limits are wall-clock (the original worker cannot run here:
    its observer needs a cgroup v1 perf_event hierarchy this host does not mount, and its
    python volume is built from an image pulled from a registry)."""
    tmp_path.chmod(0o755)  # the judge's users must reach the folders under it
    seen = {}
    for solution, expected in sorted(JUDGE_SOLUTIONS.items()):
        # Its local mode kills a program at the wall-clock limit and then compares the wall time
        # it measured with the limit: a kill it measured at 1.9997 s of 2 s reads RTE, not TLE
        # (seen once in three full runs). Such a run of its own is repeated, twice at most.
        task = judge_task(judge_work, solution, name=f"{solution}-local-{tmp_path.name}")
        command = f"python3 judge.py execute --local tests/tests.yaml solution/{solution} results"
        for attempt in range(3):
            folder = tmp_path / f"{solution}-{attempt}"
            subprocess.run(["cp", "-rL", str(task), str(folder)], check=True)
            subprocess.run(
                [
                    *("docker", "run", "--rm", "--network", "none"),
                    *("-v", f"{folder}:/w", "-w", "/w"),
                    *("--label", f"org.kolejka.test={sandbox.run_id}", JUDGE_IMAGE),
                    *("sh", "-c", f"{command} > console_stdout.txt"),
                ],
                check=True,
                timeout=300,
            )
            seen[solution] = verdicts(folder)
            if seen[solution] == expected:
                break
    assert seen == JUDGE_SOLUTIONS


@pytest.mark.parametrize("solution", sorted(HOSTILE_SOLUTIONS))
def test_it_judges_a_hostile_solution_and_the_node_stays_healthy(
    clean, observer, judge_work, tmp_path, solution
):
    """A fork bomb, a memory bomb and a solution trying writes outside its folders, the
    observer and the judge itself: each gets its verdict, the judge lives on, and nothing is
    left behind (`clean`)."""
    task = judge_task(judge_work, solution, name=f"{solution}-{tmp_path.name}", tests=("small",))
    done = worker(clean, observer, task, tmp_path / "result")
    assert done.returncode == 0, done.stderr
    result = load_result(tmp_path / "result")
    assert result.status is Status.OK, result.to_dict()
    assert_judged(tmp_path / "result", solution, {"small": HOSTILE_SOLUTIONS[solution]})
    if solution == "escape.cpp":
        logs = tmp_path / "result" / "results" / "small" / "satori" / "logs" / "log.zip"
        with zipfile.ZipFile(logs) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith("executor_run_stderr.txt")]
            attempts = archive.read(name).decode().splitlines()
        assert len(attempts) == 6 and not [line for line in attempts if "DONE" in line], attempts
