"""Periodic tasks: each tick of a schedule queues one ordinary task, however many server
processes try; missed ticks follow the schedule's policy; pausing, files kept, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest

from .flows import claim, eventually, register, spec, upload
from .harness import BIN, Server

NOWHERE = {"requires": ["nowhere"]}  # runs no node takes: they stay queued to be counted


def add(server: Server, cron: str = "*/5 * * * *", user: str = "alice", **body: Any) -> dict:
    answer = server.api(user).post(
        "schedules/", json={"cron": cron, "task": spec(**NOWHERE), **body}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def tick(server: Server, at: datetime | str) -> int:
    moment = at if isinstance(at, str) else at.isoformat()
    done = server.manage("runschedules", "--now", moment, "--json")
    return int(json.loads(done.stdout)["queued"])


def runs(server: Server) -> list[dict]:
    return [
        task
        for task in server.api("alice").get("tasks/", params={"limit": 1000}).json()["results"]
        if task["task"]["requires"] == ["nowhere"]
    ]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_it_queues_one_ordinary_task_per_tick(grid: Server):
    schedule = add(grid)
    first = at(schedule["next_run"])
    assert first.minute % 5 == 0 and first.second == 0
    assert tick(grid, first - timedelta(seconds=1)) == 0  # not due yet
    assert tick(grid, first) == 1
    assert tick(grid, first + timedelta(seconds=30)) == 0  # that tick has run
    assert tick(grid, first + timedelta(minutes=5)) == 1
    queued = runs(grid)
    assert len(queued) == 2 and {task["state"] for task in queued} == {"queued"}
    shown = grid.api("alice").get(f"schedules/{schedule['key']}/").json()
    assert shown["runs"] == 2 and shown["last_task"] == queued[0]["key"]
    assert at(shown["next_run"]) == first + timedelta(minutes=10)


@pytest.mark.parametrize("backend", ["postgres"])
def test_it_runs_each_tick_once_however_many_server_processes_try(grid: Server):
    keys = [add(grid, "0 * * * *")["key"] for _ in range(40)]
    due = max(at(grid.api("alice").get(f"schedules/{key}/").json()["next_run"]) for key in keys)
    for hour in range(3):
        moment = (due + timedelta(hours=hour)).isoformat()
        command = [str(BIN / "kolejka-server"), "runschedules", "--now", moment, "--json"]
        processes = [
            subprocess.Popen(command, env=grid.env, stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        counts = [json.loads(run.communicate(timeout=120)[0])["queued"] for run in processes]
        assert sum(counts) == 40, counts
    assert len(runs(grid)) == 120
    for key in keys:
        assert grid.api("alice").get(f"schedules/{key}/").json()["runs"] == 3


def test_it_runs_the_missed_ticks_once_or_skips_them(server: Server):
    once = add(server, missed="once")
    skip = add(server, missed="skip")
    first = at(once["next_run"])
    assert at(skip["next_run"]) == first
    later = first + timedelta(days=2, seconds=90)  # the servers were down for two days
    assert tick(server, later) == 1
    for schedule in (once, skip):
        shown = server.api("alice").get(f"schedules/{schedule['key']}/").json()
        assert at(shown["next_run"]) == first + timedelta(days=2, minutes=5)
        assert shown["runs"] == (1 if schedule is once else 0)
    # A tick run within KOLEJKA_SCHEDULE_GRACE (a minute) of its time is no missed one.
    assert tick(server, first + timedelta(days=2, minutes=5, seconds=50)) == 2


def test_it_queues_nothing_while_paused_and_resumes_from_the_next_tick(server: Server):
    schedule = add(server)
    alice = server.api("alice")
    paused = alice.post(f"schedules/{schedule['key']}/pause/")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert tick(server, at(schedule["next_run"]) + timedelta(hours=1)) == 0
    resumed = alice.post(f"schedules/{schedule['key']}/resume/").json()
    assert resumed["paused"] is False
    assert at(resumed["next_run"]) > datetime.now(at(schedule["next_run"]).tzinfo)
    assert alice.delete(f"schedules/{schedule['key']}/").status_code == 204
    assert alice.get(f"schedules/{schedule['key']}/").status_code == 404
    assert runs(server) == []


def test_it_keeps_a_schedule_s_files_until_it_is_removed(server: Server):
    alice = server.api("alice")
    blob = upload(alice, os.urandom(64))
    schedule = add(server, task=spec(**NOWHERE, files={"in": {"reference": blob}}))
    swept = json.loads(server.manage("collectgarbage", "--grace", "0", "--json").stdout)
    assert swept["blobs"] == 0
    assert tick(server, schedule["next_run"]) == 1  # and the run still reads it
    alice.delete(f"schedules/{schedule['key']}/")
    for task in runs(server):
        alice.delete(f"tasks/{task['key']}/")
    swept = json.loads(server.manage("collectgarbage", "--grace", "0", "--json").stdout)
    assert swept["blobs"] == 1


def test_it_says_why_a_tick_queued_nothing(server: Server):
    schedule = add(server, user="bob")
    server.manage("setuser", "bob", "--disable")
    assert tick(server, schedule["next_run"]) == 0
    shown = server.api("ada").get(f"schedules/{schedule['key']}/").json()
    assert shown["runs"] == 0 and "disabled" in shown["last_error"]
    assert at(shown["next_run"]) > at(schedule["next_run"])


def test_it_runs_due_ticks_when_foremen_call_in_without_a_cron_job(server: Server):
    schedule = add(server, "* * * * *")
    server.manage(
        "shell",
        "-c",
        "from datetime import timedelta; from django.utils import timezone; "
        "from kolejka.server.grid.models import Schedule; "
        f"Schedule.objects.filter(key={schedule['key']!r})"
        ".update(next_run=timezone.now() - timedelta(seconds=1))",
    )
    fred = server.api("fred")
    register(fred, "n1")
    eventually(lambda: claim(fred, "n1", wait=0) and runs(server), what="the due run")
    assert len(runs(server)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "@daily"}, "cron"),
        ({"cron": "* * * * *", "missed": "twice"}, "missed"),
        ({"cron": "* * * * *", "priority": 5}, "priority"),
        ({"cron": "* * * * *", "task": spec(files={"in": {"reference": "a" * 64}})}, None),
        ({"cron": "* * * * *", "every": "minute"}, "every"),
    ],
)
def test_it_refuses_a_bad_schedule_naming_the_field(shared: Server, body: dict, field):
    answer = shared.api("alice").post("schedules/", json={"task": spec(), **body})
    assert answer.status_code in (400, 403), answer.text
    error = answer.json()
    assert field is None or error.get("field") == field or error["detail"].startswith(field)
    assert shared.api("alice").get("schedules/").json()["results"] == []
