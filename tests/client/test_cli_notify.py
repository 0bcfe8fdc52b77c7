"""``kolejka-client task deliveries`` and the notifications in ``task status``, against a real
server and a real receiver on loopback."""

import json

from ..server.flows import eventually
from ..server.receivers import receiver
from .conftest import make_task
from .test_cli_commands import one_line_error


def test_it_lists_a_tasks_deliveries_and_shows_them_in_its_status(
    cli, server, foreman, tmp_path, tag
):
    with receiver(500) as hooked:
        notify = [{"webhook": hooked.url, "events": ["done"]}]
        key = server.client("alice").submit(make_task(tmp_path / "t", tag, notify=notify)).key
        foreman.run(tmp_path / "result")
        eventually(lambda: hooked.calls, what="the first attempt")
        listed = eventually(
            lambda: (
                json.loads(cli("task", "deliveries", "--json", key).stdout)[0]["tried"]
                and cli("task", "deliveries", key)
            ),
            what="the attempt in the log",
        )
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["EVENT", "TARGET", "OUTCOME", "ATTEMPTS", "LAST"]
    assert row.split()[:4] == ["done", hooked.url, "pending", "1"]
    assert "answered 500" in row
    status = cli("task", "status", key).stdout
    assert f"notified  done to {hooked.url}: pending after 1 attempt(s), next " in status


def test_it_says_in_one_line_that_a_task_it_cannot_see_has_no_log(cli):
    key = "t-00000000000000000000"
    one_line_error(cli("task", "deliveries", key), 2, f"task {key}: ")
