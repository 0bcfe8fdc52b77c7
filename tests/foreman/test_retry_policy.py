"""Retry policies with real hostile tasks on a real grid (server, observer, foreman, docker): a
task out of memory runs again with its memory doubled until it passes, a task exiting with a
named code runs again, a batch template's policy holds for each of its tasks, and a bad policy
is one line from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from kolejka.client import TaskState
from kolejka.common import Status

from ..client.live import BIN, wait_for

MiB = 2**20
PASS_ON_SECOND = '[ "$KOLEJKA_ATTEMPT" -ge 2 ] || exit 75; echo "passed on $KOLEJKA_ATTEMPT"'


def test_it_grows_the_memory_of_a_task_out_of_memory_until_it_passes(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    folder = grid.task(
        tmp_path / "hog",
        ["kolejka-probe", "mem", "200"],
        stdout="out.txt",
        limits={"memory": "64M", "swap": 0, "time": "60s"},
        retry={"on_memory_limit": "grow", "memory_max": "256M", "max": 3},
    )
    key = grid.client().submit(folder).key
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED}, deadline=300)
    assert info.state is TaskState.DONE, info.error
    result = grid.client().result(key)
    assert result.status is Status.OK
    attempts = result.attempts
    assert [(a.attempt, a.status, a.memory) for a in attempts] == [
        (1, Status.MEMORY_LIMIT, 64 * MiB),
        (2, Status.MEMORY_LIMIT, 128 * MiB),
        (3, Status.OK, 256 * MiB),
    ]
    peaks = [a.memory_peak or 0 for a in attempts]
    assert peaks[0] <= 64 * MiB and peaks[1] <= 128 * MiB and peaks[2] >= 200 * MiB
    assert [a.retry for a in attempts] == [
        "memory limit 64M hit; grown to 128M",
        "memory limit 128M hit; grown to 256M",
        None,
    ]
    assert result.limits.memory == 256 * MiB  # the worker enforced the grown limit
    assert info.task is not None and info.task.limits.memory == 256 * MiB
    assert [entry["result"]["status"] for entry in info.history] == ["MEMORY_LIMIT"] * 2


def test_it_runs_a_task_again_on_a_named_exit_code(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    folder = grid.task(
        tmp_path / "flaky",
        ["sh", "-c", f'echo "attempt $KOLEJKA_ATTEMPT"; {PASS_ON_SECOND}'],
        stdout="out.txt",
        retry={"on_exit": [75], "max": 2},
    )
    client = grid.client()
    key = client.submit(folder).key
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED}, deadline=300)
    assert info.state is TaskState.DONE, info.error
    result = client.result(key)
    assert [(a.attempt, a.result, a.status) for a in result.attempts] == [
        (1, 75, Status.RUNTIME_ERROR),
        (2, 0, Status.OK),
    ]
    assert info.attempts == 2 and info.max_attempts == 4  # the platform's three stay
    # The first attempt's result stays readable in the history, its output file too.
    [earlier] = info.history
    reference = earlier["result"]["files"]["out.txt"]["reference"]
    client.get_blob(reference, tmp_path / "first.txt")
    assert (tmp_path / "first.txt").read_text() == "attempt 1\n"


def test_it_applies_a_batch_templates_policy_to_each_task(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=2)
    # Row 1 passes on its second attempt; row 2 never does and stops at max.
    script = f"[ {{i}} = 2 ] && exit 75; {PASS_ON_SECOND}"
    template = grid.task(
        tmp_path / "template", ["sh", "-c", script], retry={"on_exit": [75], "max": 2}
    )
    done = subprocess.run(
        [str(BIN / "kolejka-client"), "batch", "submit", str(template), "--range", "1-2"],
        env=grid.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    batch = done.stdout.strip()
    client = grid.client()
    tasks = sorted(client.batch_tasks(batch), key=lambda info: info.position or 0)
    keys = [info.key for info in tasks]
    finals = [grid.wait_state(key, {TaskState.DONE}, deadline=300) for key in keys]
    results = [info.result for info in finals]
    assert [r.status for r in results if r is not None] == [Status.OK, Status.RUNTIME_ERROR]
    assert [len(r.attempts) for r in results if r is not None] == [2, 3]
    assert all(info.task is not None and info.task.retry is not None for info in finals)


def test_it_refuses_a_bad_policy_on_the_command_line_in_one_line(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    registered = lambda: [node.name for node in grid.client("fred").nodes()]  # noqa: E731
    wait_for(registered, "node-a to register")  # the largest node, which memory_max must fit
    for name, policy, field in [
        ("negative", {"on_exit": [75], "max": -1}, "retry.max"),
        ("verdict", {"on_verdict": ["RTE"], "max": 2}, "retry.on_verdict[0]"),
        ("cap", {"on_memory_limit": "grow", "memory_max": "1024P", "max": 2}, "retry.memory_max"),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        task = {"image": "kolejka/busybox:latest", "args": ["true"], "retry": policy}
        (folder / "kolejka_task.json").write_text(json.dumps(task))
        done = subprocess.run(
            [str(BIN / "kolejka-client"), "task", "put", str(folder)],
            env=grid.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (done.returncode, done.stdout) == (2, "")  # a usage error, local or the server's 400
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and field in lines[0] and "Traceback" not in done.stderr, lines
    assert list(grid.client().tasks()) == []


def test_it_leaves_a_task_without_a_policy_as_the_original_kolejka_ran_it(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", slots=1)
    folder = grid.task(tmp_path / "plain", ["sh", "-c", "exit 75"])
    key = grid.client().submit(folder).key
    info = grid.wait_state(key, {TaskState.DONE})
    assert (info.attempts, info.history) == (1, [])
    assert info.result is not None and info.result.status is Status.RUNTIME_ERROR
    raw = Path(tmp_path / "r")
    grid.client().fetch_result(key, raw)
    assert "attempts" not in json.loads((raw / "kolejka_result.json").read_text())
