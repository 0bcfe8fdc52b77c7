"""kolejka-judge's task folders, exactly as its ``judge.py task`` writes them (symlinks to the
problem's files), run by ``kolejka-worker execute`` with an observer: the per-test verdicts of
the original (kolejka-judge's own), with its results and logs collected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kolejka.common import Status, load_result

from .original import JUDGE_SOLUTIONS, assert_judged, judge_task

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
    judge_clean, judge_observer, judge_work, tmp_path, solution
):
    task = judge_task(judge_work, solution, name=f"{solution}-{tmp_path.name}")
    assert (task / "solution" / solution).is_symlink()
    done = worker(judge_clean, judge_observer, task, tmp_path / "result")
    assert done.returncode == 0, done.stderr
    result = load_result(tmp_path / "result")
    assert result.status is Status.OK, result.to_dict()
    assert result.limits.root is True
    assert_judged(tmp_path / "result", solution)
