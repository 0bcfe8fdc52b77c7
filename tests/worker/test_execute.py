"""kolejka.worker.execute: normal tasks run as the task format says."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import docker
import pytest

from kolejka.common import SpecError, Status
from kolejka.worker import WorkerConfig, execute

from .helpers import BUSYBOX, DEBIAN, make_task


def test_it_runs_a_task_and_writes_its_result(any_run):
    outcome = any_run(args=["uname"], stdout="stdout.txt", limits={"time": "10s"}, id="u1")
    result = outcome.result
    assert result.status is Status.OK
    assert result.result == 0
    assert result.id == "u1"
    assert outcome.text("stdout.txt") == "Linux\n"
    assert set(result.files) == {"stdout.txt"}
    assert result.accounting == ("observer" if any_run.config.observer else "cgroup")
    assert result.stats.time is not None and 0 < result.stats.time < 10
    assert result.stats.cpu.usage is not None and result.stats.cpu.usage < 1
    assert result.limits.time == 10
    assert result.limits.memory == WorkerConfig().defaults.memory


def test_it_feeds_stdin_and_merges_stdout_and_stderr(run):
    outcome = run(
        {"in.txt": "one\ntwo\n"},
        args=["sh", "-c", "cat; echo to-stderr >&2; cat missing-file"],
        stdin="in.txt",
        stdout="console.txt",
        stderr="console.txt",
    )
    assert outcome.status is Status.RUNTIME_ERROR
    assert outcome.result.result == 1
    assert outcome.text("console.txt").startswith("one\ntwo\nto-stderr\ncat: can't open")


def test_it_gives_an_empty_stdin_without_a_stdin_file(run):
    outcome = run(args=["sh", "-c", "wc -c"], stdout="out.txt")
    assert outcome.text("out.txt").strip() == "0"


def test_it_keeps_the_image_environment_and_adds_the_task_s(run):
    outcome = run(
        image=DEBIAN,
        args=["sh", "-c", 'echo "$PATH|$LANG|$GREETING|$(pwd)|$(id -u)"'],
        environment={"GREETING": "hello world", "LANG": "C"},
        stdout="out.txt",
    )
    path, lang, greeting, cwd, uid = outcome.text("out.txt").strip().split("|")
    assert path.startswith("/usr/local/sbin:")
    assert (lang, greeting) == ("C", "hello world")
    assert cwd == "/var/lib/kolejka/task"
    assert uid == "65534"


def test_it_places_input_files_in_the_working_folder(run):
    outcome = run(
        {"data/in.txt": "42\n", "run.sh": "#!/bin/sh\ncat data/in.txt\n"},
        args=["./run.sh"],
        stdout="out.txt",
    )
    assert outcome.status is Status.OK, outcome.result.error
    assert outcome.text("out.txt") == "42\n"


def test_it_collects_files_by_glob_with_strip_and_prefix(run):
    script = "mkdir -p out/a/b; echo 1 > out/a/x.txt; echo 2 > out/a/b/y.txt; echo 3 > z.log"
    outcome = run(
        args=["sh", "-c", script],
        collect=[
            {"glob": "out/**/*.txt", "strip": 1, "prefix": "texts"},
            {"glob": "*.log"},
            {"glob": "nothing/*"},
        ],
    )
    assert outcome.status is Status.OK
    assert set(outcome.result.files) == {"texts/a/x.txt", "texts/a/b/y.txt", "z.log"}
    assert outcome.text("texts/a/b/y.txt") == "2\n"


def test_it_reports_the_exit_code_of_a_failing_program(run):
    outcome = run(args=["sh", "-c", "exit 3"])
    assert (outcome.status, outcome.result.result) == (Status.RUNTIME_ERROR, 3)


def test_it_reports_a_program_killed_by_a_signal(run):
    outcome = run(args=["kolejka-probe", "crash"])
    assert outcome.status is Status.RUNTIME_ERROR
    assert outcome.result.result == 128 + 11


def test_it_reports_a_missing_program_as_a_runtime_error(run):
    outcome = run(args=["no-such-program", "x"])
    assert (outcome.status, outcome.result.result) == (Status.RUNTIME_ERROR, 127)
    assert "no-such-program" in (outcome.result.error or "")


def test_it_refuses_an_invalid_task_and_writes_no_result(clean, tmp_path):
    folder = make_task(tmp_path / "task", args=["true"], limits={"memroy": "1G"})
    with pytest.raises(SpecError, match=r"limits\.memroy: unknown limit"):
        execute(folder, tmp_path / "result", config=clean.config())
    assert not (tmp_path / "result").exists()


def test_it_refuses_a_result_folder_that_is_not_empty(clean, tmp_path):
    folder = make_task(tmp_path / "task", args=["true"])
    (tmp_path / "result").mkdir()
    (tmp_path / "result" / "old.txt").write_text("keep me")
    with pytest.raises(SpecError, match="result folder"):
        execute(folder, tmp_path / "result", config=clean.config())
    assert (tmp_path / "result" / "old.txt").read_text() == "keep me"


def test_it_refuses_inputs_larger_than_the_workspace(clean, tmp_path):
    big = {"big.bin": b"x" * (2 * 2**20)}
    folder = make_task(tmp_path / "task", big, args=["true"], limits={"workspace": "1M"})
    with pytest.raises(SpecError, match=r"limits\.workspace"):
        execute(folder, tmp_path / "result", config=clean.config())


def test_it_reports_a_missing_image_as_a_system_error(run):
    outcome = run(image="kolejka/no-such-image:1", args=["true"])
    assert outcome.status is Status.SYSTEM_ERROR
    assert "kolejka/no-such-image:1" in (outcome.result.error or "")
    assert "pulling it failed" in (outcome.result.error or "")


def test_it_runs_as_an_unprivileged_user_unless_the_operator_allows_root(clean, tmp_path):
    from .helpers import Runner

    asks_root = {"args": ["id", "-u"], "stdout": "id.txt", "limits": {"root": True}}
    refused = Runner(tmp_path / "a", clean.config())(**asks_root)
    assert refused.text("id.txt") == "65534\n"
    assert refused.result.limits.root is False
    allowed = Runner(tmp_path / "b", clean.config(maxima=WorkerConfig().maxima.__class__()))(
        **asks_root
    )
    assert allowed.text("id.txt") == "0\n"
    assert allowed.result.limits.root is True


def test_it_pins_the_task_to_the_placed_cores(run):
    from kolejka.worker import Placement

    folder = run.folder()
    make_task(
        folder / "task",
        args=["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
        stdout="out.txt",
    )
    outcome = run.run_folder(folder / "task", placement=Placement(cpus=(1,)))
    assert outcome.text("out.txt").split() == ["Cpus_allowed_list:", "1"]
    assert outcome.result.limits.cpus_offset == 1


def test_it_writes_results_the_original_can_read(run):
    outcome = run(args=["true"])
    document = json.loads((outcome.folder / "kolejka_result.json").read_text())
    assert document["result"] == 0
    assert document["status"] == "OK"
    assert set(document["stats"]) >= {"cpu", "memory", "pids", "time"}


def test_it_reports_an_unreachable_engine_as_a_system_error(clean, tmp_path):
    from .helpers import Runner

    run = Runner(tmp_path, clean.config(docker_url=f"unix://{tmp_path}/no-docker.sock"))
    outcome = run(args=["true"])
    assert outcome.status is Status.SYSTEM_ERROR
    assert (outcome.result.error or "").startswith("cannot reach the docker engine at unix://")


def test_it_follows_the_pull_policy(clean, tmp_path):
    from kolejka.worker import PullPolicy

    from .helpers import Runner

    never = Runner(tmp_path / "never", clean.config(pull=PullPolicy.NEVER))
    outcome = never(image="kolejka/no-such-image:2", args=["true"])
    assert outcome.status is Status.SYSTEM_ERROR
    assert outcome.result.error == (
        "image kolejka/no-such-image:2 is not on this node and the pull policy is never"
    )
    # The registry does not answer here: a present image is used all the same.
    always = Runner(tmp_path / "always", clean.config(pull=PullPolicy.ALWAYS))
    assert always(args=["true"]).status is Status.OK


def test_it_refuses_an_image_larger_than_the_image_limit(run):
    outcome = run(args=["true"], limits={"image": "1K"})
    assert outcome.status is Status.SYSTEM_ERROR
    assert "larger than limits.image 1K" in (outcome.result.error or "")


def test_it_takes_the_image_s_inspect_document_from_its_caller(run):
    found = docker.from_env().api.inspect_image(BUSYBOX)
    task = {"args": ["true"], "limits": {"image": "1G"}}
    assert run.run_folder(make_task(run.folder() / "task", **task), image=found).status is Status.OK
    # Not inspected again: a document saying the image is larger than the limit is believed.
    found["Size"] = 2**40
    outcome = run.run_folder(make_task(run.folder() / "task", **task), image=found)
    assert outcome.status is Status.SYSTEM_ERROR
    assert "larger than limits.image 1G" in (outcome.result.error or "")


def test_it_leaves_removing_the_container_to_its_caller_when_asked(run, clean):
    with contextlib.ExitStack() as later:
        outcome = run.run_folder(make_task(run.folder() / "task", args=["true"]), later=later)
        assert outcome.status is Status.OK
        assert len(clean.containers()) == 1  # the result is written, the dead container kept
    assert clean.containers() == []


def test_it_waits_for_a_program_that_closes_its_output_early(run):
    outcome = run(args=["sh", "-c", "exec >&- 2>&-; sleep 1; exit 4"], stdout="out.txt")
    assert (outcome.status, outcome.result.result) == (Status.RUNTIME_ERROR, 4)
    assert (outcome.result.stats.time or 0) >= 1


def test_it_ends_a_program_that_does_not_read_its_large_stdin(run):
    outcome = run({"big.txt": b"y\n" * (8 * 2**20)}, args=["true"], stdin="big.txt")
    assert outcome.status is Status.OK


def test_it_writes_the_originals_result_fields(any_run):
    """What readers of the original's results find: an `id` (made up when the task has none),
    CPU time per CPU adding up to the total, limit-hit counts, the swap peak, and the
    `storage` limit the task gave."""
    outcome = any_run(
        args=["sh", "-c", "kolejka-probe cpu 0.2; kolejka-probe forkbomb >/dev/null; true"],
        limits={"time": "2s", "pids": 8, "storage": "1G"},
    )
    result = outcome.result
    assert len(result.id or "") == 32
    stats = result.stats
    assert stats.cpus and set(stats.cpus) <= {str(cpu) for cpu in range(os.cpu_count() or 1)}
    per_cpu = sum(cpu.usage or 0 for cpu in stats.cpus.values())
    assert per_cpu == pytest.approx(stats.cpu.usage, abs=1e-6)
    assert stats.memory.failures == 0 and stats.memory.max_swap == 0
    assert stats.pids.failures and stats.pids.failures > 0  # the fork bomb hit the limit
    assert result.limits.storage == 2**30
    written = json.loads((outcome.folder / "kolejka_result.json").read_text())
    assert written["stats"]["cpus"] and written["id"] == result.id


def test_it_counts_none_of_runc_s_cpu_while_it_looks_less_often_at_its_sleeping_init(
    run, monkeypatch
):
    # runc's init costs ~35 ms of CPU; `true` a fraction of one. Looking at the init every
    # WAIT_POLL while it sleeps on its parent must still take the baseline just before the exec.
    from kolejka.observer import sessions

    waits, slept = sessions._waits_for_parent, []

    def watched(pid: int) -> bool:
        slept.append(waits(pid))
        return slept[-1]

    monkeypatch.setattr(sessions, "_waits_for_parent", watched)
    usages = []
    for _ in range(3):
        outcome = run(args=["true"])
        assert outcome.status is Status.OK
        usages.append(outcome.result.stats.cpu.usage or 0)
    assert any(slept) and not all(slept)
    # The median: a watcher starved by a loaded machine may miss the exec in any one run (as
    # with a look every millisecond); a rule that missed it would miss it in every run.
    assert sorted(usages)[1] < 0.005, usages


def test_it_never_reports_less_memory_than_the_program_used_when_its_watcher_is_late(
    run, monkeypatch
):
    # The watcher looks again at the runtime's init only once the program has ended, as one
    # starved by a loaded machine does: the memory the program touched must still be its peak.
    from kolejka.observer import sessions

    exe, seen = sessions._exe, set()

    def late(pid: int) -> tuple[int, int]:
        if pid in seen:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                exe(pid)  # raises once the program has ended
        seen.add(pid)
        return exe(pid)

    monkeypatch.setattr(sessions, "_exe", late)
    outcome = run(args=["kolejka-probe", "mem", "8"], limits={"time": "20s", "memory": "64M"})
    assert outcome.status is Status.OK
    assert (outcome.result.stats.memory.max_usage or 0) >= 8 * 2**20


def test_it_keeps_the_peak_of_a_child_that_ended_before_a_late_watcher_saw_the_start(
    run, monkeypatch
):
    # The watcher sees the shell started only once its child, which touched 8 MiB, has ended:
    # the shell still runs, and resetting the peak then would report the shell's memory alone.
    from kolejka.observer import sessions

    exe, seen = sessions._exe, set()

    def late(pid: int) -> tuple[int, int]:
        if pid in seen:
            children = Path(f"/proc/{pid}/task/{pid}/children")
            had_child = False
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                now = children.read_text().split()  # raises if the shell has ended
                had_child = had_child or bool(now)
                if had_child and not now:
                    break
        seen.add(pid)
        return exe(pid)

    monkeypatch.setattr(sessions, "_exe", late)
    outcome = run(
        args=["sh", "-c", "kolejka-probe mem 8; sleep 1"], limits={"time": "20s", "memory": "64M"}
    )
    assert outcome.status is Status.OK
    assert (outcome.result.stats.memory.max_usage or 0) >= 8 * 2**20


def test_it_places_the_files_folder_and_glob_entries_give(run):
    folder = run.folder() / "task"
    make_task(
        folder,
        {"tests/1.in": "a\n", "tests/deep/2.in": "b\n", "tests/1.out": "x\n"},
        args=["sh", "-c", "cat t/1.in t/deep/2.in in/1.in; ls in"],
        stdout="out.txt",
    )
    task = json.loads((folder / "kolejka_task.json").read_text())
    task["files"] = {"t": {"folder": "tests"}, "in": {"glob": "tests/*.in"}}
    (folder / "kolejka_task.json").write_text(json.dumps(task))
    outcome = run.run_folder(folder)
    assert outcome.status is Status.OK, outcome.result.to_dict()
    assert outcome.text("out.txt") == "a\nb\na\n1.in\n"
