"""``kolejka-client cron``: periodic tasks from the command line, against a real server."""

import json

from .conftest import make_task


def test_it_adds_lists_pauses_resumes_and_removes_a_schedule(cli, tmp_path, tag):
    task = make_task(tmp_path / "task", tag)
    added = cli("cron", "add", "--json", "*/15 * * * *", str(task))
    assert added.returncode == 0, added.stderr
    schedule = json.loads(added.stdout)
    key = schedule["key"]
    assert schedule["cron"] == "*/15 * * * *" and schedule["missed"] == "once"
    assert schedule["task"]["files"]["in.txt"]["reference"]  # the file was uploaded
    listed = cli("cron", "list")
    assert listed.returncode == 0 and key in listed.stdout and "active" in listed.stdout
    assert "paused" in cli("cron", "pause", key).stdout
    assert json.loads(cli("cron", "list", "--json").stdout)[-1]["paused"] is True
    resumed = cli("cron", "resume", key)
    assert resumed.returncode == 0 and "next run" in resumed.stdout
    assert cli("cron", "remove", key).returncode == 0
    assert key not in cli("cron", "list").stdout


def test_it_says_in_one_line_what_is_wrong(cli, tmp_path, tag):
    task = make_task(tmp_path / "task", tag)
    bad = cli("cron", "add", "61 * * * *", str(task))
    assert bad.returncode != 0 and "cron" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = cli("cron", "pause", "c-0000")
    assert missing.returncode != 0 and "no such schedule" in missing.stderr
    others = json.loads(cli("cron", "add", "--json", "0 0 1 1 *", str(task)).stdout)["key"]
    assert cli("cron", "remove", others, user="bob").returncode != 0
