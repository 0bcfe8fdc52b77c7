"""`KolejkaClient.log` against a real server, a stand-in foreman streaming the task's output
through `append_log`."""

from __future__ import annotations

import base64
import json
import subprocess
import threading

import pytest

from kolejka.client import Conflict, LeaseLost, LogPart, NotFound

from .conftest import cli_env
from .live import BIN, wait_for


def test_it_follows_a_log_until_the_task_ends(server, foreman, task_dir):
    alice = server.client("alice")
    key = alice.submit(task_dir).key
    claim = foreman.claim()
    assert claim.lease is not None
    foreman.client.heartbeat(claim.lease, running=True)
    assert foreman.client.append_log(claim.lease, "stdout", 0, b"one\n") == 4
    parts: list[LogPart] = []
    follower = threading.Thread(
        target=lambda: parts.extend(alice.log(key, follow=True)), daemon=True
    )
    follower.start()
    wait_for(lambda: parts, "the first line to be followed")
    assert foreman.client.append_log(claim.lease, "stdout", 4, b"two\n") == 8
    wait_for(lambda: len(parts) >= 2, "the second line to be followed")
    assert alice.cancel(key).state == "cancelled"
    follower.join(timeout=120)
    assert not follower.is_alive(), "the follow did not end with the task"
    assert b"".join(part.data for part in parts) == b"one\ntwo\n"
    assert parts[-1].complete and not parts[-1].truncated


def test_it_reads_a_new_run_from_its_start_also_when_its_attempt_number_is_the_same(
    server, foreman, task_dir
):
    alice = server.client("alice")
    key = alice.submit(task_dir).key
    first = foreman.claim()
    assert first.lease is not None
    foreman.client.append_log(first.lease, "stdout", 0, b"handed back\n")
    parts: list[LogPart] = []
    follower = threading.Thread(
        target=lambda: parts.extend(alice.log(key, follow=True)), daemon=True
    )
    follower.start()
    wait_for(lambda: parts, "the first run's line to be followed")
    foreman.client.release(first.lease)  # the attempt is not counted: the next has its number
    second = foreman.claim()
    assert second.lease is not None and second.lease.attempt == first.lease.attempt
    foreman.client.append_log(second.lease, "stdout", 0, b"again\n")
    wait_for(lambda: len(parts) >= 2, "the second run's line to be followed")
    alice.cancel(key)
    follower.join(timeout=120)
    assert [part.data for part in parts if part.data] == [b"handed back\n", b"again\n"]
    assert parts[0].started != parts[1].started


def test_it_refuses_a_gap_and_a_lost_lease(server, foreman, task_dir):
    key = server.client("alice").submit(task_dir).key
    claim = foreman.claim()
    assert claim.lease is not None
    with pytest.raises(Conflict) as gap:
        foreman.client.append_log(claim.lease, "stdout", 5, b"late\n")
    assert not isinstance(gap.value, LeaseLost)
    foreman.client.release(claim.lease)
    with pytest.raises(LeaseLost):
        foreman.client.append_log(claim.lease, "stdout", 0, b"stale\n")
    with pytest.raises(NotFound):
        list(server.client("bob").log(key))


def test_it_prints_a_log_raw_or_as_json_lines_and_says_when_it_was_cut(
    server, foreman, task_dir, cli, home
):
    key = server.client("alice").submit(task_dir).key
    claim = foreman.claim()
    assert claim.lease is not None
    foreman.client.append_log(claim.lease, "stdout", 0, b"\xff raw\n")
    foreman.client.append_log(claim.lease, "stderr", 0, b"cut", truncated=True)
    raw = subprocess.run(
        [str(BIN / "kolejka-client"), "task", "log", key],
        env=cli_env(server, home),
        capture_output=True,
        timeout=120,
    )
    assert (raw.returncode, raw.stdout, raw.stderr) == (0, b"\xff raw\n", b"")  # byte for byte
    cut = cli("task", "log", key, "--stderr")
    assert (cut.returncode, cut.stdout) == (0, "cut")
    assert "its stderr reached the output cap" in cut.stderr
    lines = cli("task", "log", key, "--json").stdout.splitlines()
    pieces = [json.loads(line) for line in lines]
    assert pieces[0]["data"] == base64.b64encode(b"\xff raw\n").decode()
    assert (pieces[-1]["next"], pieces[-1]["size"], pieces[-1]["complete"]) == (6, 6, False)
    missing = cli("task", "log", "t-nosuchtask")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
