"""Workflows from the command line against a real server, with stand-in foremen: tasks and
batch rows that wait for others (``--after``, a row's ``after`` column), one's own order
(``task prio``, ``batch prio``), rejudging a batch or a filter."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .live import StandInForeman
from .test_cli_batch import template, work
from .test_cli_commands import one_line_error


def test_it_runs_batch_rows_after_each_other_and_a_batch_after_a_batch(cli, server, tag, tmp_path):
    task = template(tmp_path / "template", tag)
    rows = tmp_path / "rows.csv"
    rows.write_text("n,word,after\n0,a,\n1,b,#0\n2,c,notok:#1\n3,d,any:#0 #2\n")
    submitted = cli("batch", "submit", "--json", str(task), str(rows))
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)["batch"]
    states = json.loads(cli("batch", "status", "--json", batch).stdout)["states"]
    assert (states["queued"], states["waiting"]) == (1, 3)
    waiting = cli("task", "list", "--batch", batch, "--state", "waiting").stdout
    assert waiting.count("waiting") == 3

    foremen = [StandInForeman(server, tag, f"node-{tag}-{n}") for n in range(2)]
    ran = work(foremen, tmp_path / "runs", {"row-0"})
    # Row 0 failed: row 1 (ok) is cancelled, so row 2 (notok on it) runs, then row 3.
    assert ran == Counter({"row-0": 1, "row-2": 1, "row-3": 1})
    alice = server.client("alice")
    infos = {info.task.id: info for info in alice.batch_tasks(batch) if info.task}
    assert infos["row-1"].state == "cancelled"
    assert infos["row-1"].error == (
        f"dependency {infos['row-0'].key} ended done (RUNTIME_ERROR); this task waited for it "
        "to end ok"
    )
    assert infos["row-3"].after == [
        {"position": 0, "when": "any"},
        {"position": 2, "when": "ok"},
    ]

    cancelled = cli("batch", "submit", "--json", "--after", batch, str(task), str(rows))
    later = json.loads(cancelled.stdout)["batch"]
    assert json.loads(cli("batch", "status", "--json", later).stdout)["states"]["cancelled"] == 4
    plain = tmp_path / "plain.csv"
    plain.write_text("n,word\n7,x\n8,y\n9,z\n")
    queued = cli("batch", "submit", "--after", f"any:{batch}", str(task), str(plain))
    assert queued.returncode == 0, queued.stderr
    states = json.loads(cli("batch", "status", "--json", queued.stdout.strip()).stdout)["states"]
    assert states["queued"] == 3


def test_it_puts_a_task_after_another_says_what_it_waits_for_and_refuses_bad_ones(
    cli, server, task_dir, foreman, tmp_path
):
    first = cli("task", "put", str(task_dir)).stdout.strip()
    second = cli("task", "put", "--after", f"notok:{first}", "--json", str(task_dir))
    assert second.returncode == 0, second.stderr
    key = json.loads(second.stdout)["key"]
    assert json.loads(second.stdout)["state"] == "waiting"
    why = cli("task", "why", key)
    assert why.returncode == 0 and f"waits for its dependencies: notok:{first}" in why.stdout
    assert f"notok:{first}" in cli("task", "status", key).stdout
    foreman.run(tmp_path / "out")
    assert server.client("alice").task(key).state == "cancelled"
    one_line_error(cli("task", "put", "--after", f"later:{first}", str(task_dir)), 2,
                   "after[0].when", "ok, any or notok")  # fmt: skip
    one_line_error(cli("task", "put", "--after", "t-nosuchtask", str(task_dir)), 2,
                   "after[0].key", "no task or batch of yours")  # fmt: skip


def test_it_reorders_ones_own_tasks_with_task_prio_and_batch_prio(cli, server, tag, tmp_path):
    task = template(tmp_path / "template", tag, args=["echo", "{i}"], id="row-{i}",
                    environment={}, stdout="out.txt")  # fmt: skip
    batch = cli("batch", "submit", str(task), "--range", "1-2").stdout.strip()
    alone = cli("batch", "submit", "--rank", "1", str(task), "--range", "3-3").stdout.strip()
    moved = cli("batch", "prio", batch, "5")
    assert moved.returncode == 0 and "2 tasks at rank 5" in moved.stdout, moved.stderr
    alice = server.client("alice")
    second = next(info.key for info in alice.batch_tasks(batch) if info.position == 1)
    assert cli("task", "prio", second, "9").stdout.strip() == f"{second}: rank 9"
    foreman = StandInForeman(server, tag)
    order = []
    for _ in range(3):
        ran = foreman.run(tmp_path / "out")
        order.append(ran.task.id if ran.task else None)
    assert order == ["row-2", "row-1", "row-3"]
    assert alone


def test_it_rejudges_a_batch_and_a_filter_keeping_earlier_results(cli, server, tag, tmp_path):
    task = template(tmp_path / "template", tag)
    rows = tmp_path / "rows.csv"
    rows.write_text("n,word\n0,a\n1,b\n2,c\n")
    batch = cli("batch", "submit", str(task), str(rows)).stdout.strip()
    foremen = [StandInForeman(server, tag)]
    work(foremen, tmp_path / "runs", {"row-1"})
    rejudged = cli("task", "rejudge", "--json", "--batch", batch, "--verdict", "RUNTIME_ERROR")
    assert rejudged.returncode == 0, rejudged.stderr
    assert json.loads(rejudged.stdout) == {"changed": 1}
    work(foremen, tmp_path / "again", set())
    whole = cli("batch", "rejudge", "--json", batch)
    assert json.loads(whole.stdout)["changed"] == 3
    assert work(foremen, tmp_path / "third", set()) == Counter({"row-0": 1, "row-1": 1, "row-2": 1})
    alice = server.client("alice")
    infos = {info.task.id: info for info in alice.batch_tasks(batch) if info.task}
    assert [run["result"]["status"] for run in infos["row-1"].history] == [
        "RUNTIME_ERROR",
        "OK",
    ]
    one_line_error(cli("task", "rejudge"), 2, "give a KEY or at least one filter")
    one_line_error(cli("task", "rejudge", "--owner", "bob"), 2, "owner: only admins")
    assert Path(tmp_path / "runs").is_dir()
