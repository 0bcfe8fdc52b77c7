"""kolejka-judge's task folders through a whole grid (server, observer, foreman, as
tests/foreman/grid.py starts them) with ``kolejka-client execute``: the verdicts of the original,
with the judge's files in the result the client downloads."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from kolejka.common import Status, load_result

from ..client.live import BIN
from .original import JUDGE_SOLUTIONS, assert_judged, judge_task


def test_it_judges_kolejka_judge_tasks_through_the_grid(make_grid, sandbox, judge_work, tmp_path):
    grid = make_grid()
    node = grid.foreman("node-judge", "--root-images", "kolejka/judge:*", slots=2)

    def execute(solution: str) -> subprocess.CompletedProcess[str]:
        task = judge_task(judge_work, solution, name=f"{solution}-{tmp_path.name}")
        return subprocess.run(
            [str(BIN / "kolejka-client"), "execute", str(task), str(tmp_path / solution)],
            env=grid.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    with ThreadPoolExecutor(len(JUDGE_SOLUTIONS)) as pool:
        runs = dict(zip(JUDGE_SOLUTIONS, pool.map(execute, JUDGE_SOLUTIONS), strict=True))
    for solution, done in runs.items():
        assert done.returncode == 0, done.stderr + node.text()
        result = tmp_path / solution
        outcome = load_result(result)
        assert outcome.status is Status.OK, outcome.to_dict()
        assert outcome.accounting == "observer" and outcome.limits.root is True
        assert_judged(result, solution)


def test_it_runs_an_original_task_folder_through_the_grid(make_grid, tmp_path):
    """An original task as its users write them: ``./script`` first (whatever the file's mode:
    the original's worker made every task file executable), a file that is a symlink to the
    submitter's own file elsewhere, and the home, folder and host name the original gives."""
    grid = make_grid()
    node = grid.foreman("node-a", slots=1)
    (tmp_path / "elsewhere.txt").write_text("from elsewhere\n")
    folder = grid.task(
        tmp_path / "task",
        ["./run.sh"],
        files={"run.sh": "run.sh", "data/in.txt": "data/in.txt"},
        stdout="out.txt",
    )
    (folder / "run.sh").write_text('#!/bin/sh\ncat data/in.txt\necho "$HOME $(pwd) $(hostname)"\n')
    (folder / "run.sh").chmod(0o644)
    (folder / "data").mkdir()
    (folder / "data" / "in.txt").symlink_to(tmp_path / "elsewhere.txt")
    done = subprocess.run(
        [str(BIN / "kolejka-client"), "execute", str(folder), str(tmp_path / "result")],
        env=grid.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + node.text()
    result = load_result(tmp_path / "result")
    assert result.status is Status.OK, result.to_dict()
    assert (tmp_path / "result" / "out.txt").read_text() == (
        "from elsewhere\n/var/lib/kolejka/task /var/lib/kolejka/task kolejka\n"
    )
