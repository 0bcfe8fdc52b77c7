"""``kolejka-client`` and a task with a retry policy: each attempt shown, and a policy the server
refuses is one line."""

import json

from kolejka.common import Status

from .conftest import make_task
from .test_cli_commands import one_line_error


def test_it_shows_each_attempt_of_a_task_with_a_retry_policy(cli, server, foreman, tmp_path, tag):
    folder = make_task(tmp_path / "flaky", tag, retry={"on_exit": [75], "max": 1})
    key = server.client("alice").submit(folder).key
    again = foreman.run(tmp_path / "r1", status=Status.RUNTIME_ERROR, code=75)
    assert again.state == "queued" and again.history[0]["retry"] == "exit code 75"
    foreman.run(tmp_path / "r2")
    shown = cli("task", "status", key)
    assert shown.returncode == 0, shown.stderr
    assert (
        "attempt 1: RUNTIME_ERROR (exit 75), memory limit -, peak 3.00MB; ran again: "
        in shown.stdout
    )
    assert "exit code 75\nattempt 2: OK (exit 0)" in shown.stdout
    got = cli("result", "get", key, str(tmp_path / "result"))
    assert got.returncode == 0 and "attempt 2: OK (exit 0)" in got.stdout, got.stderr
    written = json.loads((tmp_path / "result" / "kolejka_result.json").read_text())
    assert [item["retry"] for item in written["attempts"]] == ["exit code 75", None]


def test_it_says_in_one_line_that_no_node_has_the_memory_cap(cli, foreman, tmp_path, tag):
    policy = {"on_memory_limit": "grow", "memory_max": "1P", "max": 2}
    folder = make_task(tmp_path / "greedy", tag, retry=policy)
    one_line_error(cli("task", "put", str(folder)), 2, "task.retry.memory_max", "largest node")
