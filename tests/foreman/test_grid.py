"""The whole loop with real processes: server, observer, foremen, and the client."""

import contextlib
import signal
import subprocess
from pathlib import Path

from kolejka.client import TaskState
from kolejka.common import Status, load_result

from ..client.live import BIN, wait_for

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_it_runs_the_readme_example_end_to_end(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a")
    done = subprocess.run(
        [str(BIN / "kolejka-client"), "execute", str(EXAMPLES / "uname"), str(tmp_path / "result")],
        env=grid.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + grid.foremen[0].text()
    assert (tmp_path / "result" / "stdout.txt").read_text() == "Linux\n"
    result = load_result(tmp_path / "result")
    assert result.status is Status.OK
    assert result.accounting == "observer"
    assert f"hostname:{__import__('platform').node()}" in result.tags


def submit(grid, tmp_path, name, args, **fields):
    folder = grid.task(tmp_path / name, args, **fields)
    return grid.client().submit(folder).key


def running_on(grid, key):
    info = grid.wait_state(key, {TaskState.RUNNING})
    return info.node


def test_it_runs_a_task_again_elsewhere_when_its_foreman_is_killed(make_grid, tmp_path):
    grid = make_grid(KOLEJKA_LEASE_TTL="4s")
    first = grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path, "t", ["sh", "-c", "sleep 2; echo finished"], stdout="out.txt")
    assert running_on(grid, key) == "node-a"
    first.signal(signal.SIGKILL)
    first.wait()
    grid.foreman("node-b", slots=1)
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert info.state is TaskState.DONE, info.error
    assert (info.node, info.attempts) == ("node-b", 2)
    result = grid.client().result(key)
    assert result.status is Status.OK
    again = grid.foreman("node-a", "--burst", slots=1)  # the same node, back after a reboot
    assert again.wait() == 0, again.text()
    assert "removed what a previous run left: workspace" in again.text()
    mounts = Path("/proc/self/mounts").read_text()
    assert str(grid.root / "node-a") not in mounts


def test_it_accepts_one_result_when_a_stalled_foreman_comes_back(make_grid, tmp_path):
    grid = make_grid(KOLEJKA_LEASE_TTL="3s")
    stalled = grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path, "t", ["sh", "-c", "sleep 2; echo finished"], stdout="out.txt")
    assert running_on(grid, key) == "node-a"
    stalled.signal(signal.SIGSTOP)  # frozen, not dead: its container goes on
    grid.foreman("node-b", slots=1)
    info = grid.wait_state(key, {TaskState.DONE})
    assert (info.node, info.attempts) == ("node-b", 2)
    stalled.signal(signal.SIGCONT)
    wait_for(
        lambda: "lease" in stalled.text() or "dropped" in stalled.text(),
        "the stalled foreman to notice its lease is gone",
    )
    later = grid.client().task(key)
    assert (later.state, later.node, later.attempts) == (TaskState.DONE, "node-b", 2)


def test_it_runs_each_of_200_tasks_exactly_once_across_two_foremen(make_grid, tmp_path):
    grid = make_grid()
    folder = grid.task(tmp_path / "t", ["true"])
    client = grid.client()
    batch = client.submit_batch([folder] * 200)
    first = grid.foreman("node-a", "--burst")
    second = grid.foreman("node-b", "--burst")
    assert first.wait(timeout=600) == 0, first.text()
    assert second.wait(timeout=600) == 0, second.text()
    infos = [client.task(info.key) for info in batch.tasks]
    assert {info.state for info in infos} == {TaskState.DONE}
    assert {info.attempts for info in infos} == {1}
    nodes = [info.node for info in infos]
    assert set(nodes) == {"node-a", "node-b"}
    progress = client.batch(batch.batch)
    assert progress.total == 200


def test_it_finishes_running_tasks_on_sigterm_and_claims_no_more(make_grid, tmp_path):
    grid = make_grid()
    foreman = grid.foreman("node-a", "--grace", "60s", slots=1)
    key = submit(grid, tmp_path, "t", ["sh", "-c", "sleep 2; echo finished"], stdout="out.txt")
    running_on(grid, key)
    waiting = submit(grid, tmp_path, "u", ["true"])
    foreman.signal(signal.SIGTERM)
    assert foreman.wait() == 0, foreman.text()
    assert grid.client().task(key).state is TaskState.DONE
    left = grid.client().task(waiting)
    assert (left.state, left.attempts) == (TaskState.QUEUED, 0)


def test_it_hands_tasks_back_when_the_grace_period_ends(make_grid, tmp_path):
    grid = make_grid()
    foreman = grid.foreman("node-a", "--grace", "1s", slots=1)
    key = submit(grid, tmp_path, "t", ["sleep", "60"])
    running_on(grid, key)
    foreman.signal(signal.SIGTERM)
    assert foreman.wait(timeout=60) == 0, foreman.text()
    info = grid.client().task(key)
    assert info.state is TaskState.QUEUED
    assert info.attempts == 0, "a task handed back does not count as a failed attempt"


def test_it_loses_nothing_when_the_server_restarts_mid_run(make_grid, tmp_path):
    grid = make_grid(KOLEJKA_LEASE_TTL="60s")
    foreman = grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path, "t", ["sh", "-c", "sleep 1; echo finished"], stdout="out.txt")
    running_on(grid, key)
    grid.server.stop()
    spool = tmp_path / "grid0" / "node-a" / "spool"
    wait_for(lambda: any(spool.glob("*/lease.json")), "the result to wait in the spool", 60)
    grid.server.start()
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert (info.state, info.attempts) == (TaskState.DONE, 1), foreman.text()
    result = grid.client().fetch_result(key, tmp_path / "result")
    assert (tmp_path / "result" / "out.txt").read_text() == "finished\n"
    assert result.status is Status.OK
    wait_for(lambda: not any(spool.iterdir()), "the spool to empty")


def test_it_loads_an_image_the_server_stores_when_there_is_no_registry(make_grid, tmp_path):
    import docker

    grid = make_grid()
    engine = docker.from_env()
    name = f"localhost:1/kolejka-test/busybox-{grid.tag}:v1"
    engine.images.get("kolejka/busybox:latest").tag(name)
    tarball = tmp_path / "image.tar"
    with open(tarball, "wb") as handle:
        for chunk in engine.images.get(name).save(named=name):
            handle.write(chunk)
    engine.images.remove(name)
    admin = grid.client("ada")
    admin.put_image(name, admin.put_blob(tarball).reference)
    grid.foreman("node-a")
    key = submit(grid, tmp_path, "t", ["echo", "loaded"], image=name, stdout="out.txt")
    try:
        info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
        assert info.state is TaskState.DONE, info.error
        grid.client().fetch_result(key, tmp_path / "result")
        assert (tmp_path / "result" / "out.txt").read_text() == "loaded\n"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(name, force=True)


def test_it_kills_a_task_its_owner_cancels(make_grid, tmp_path):
    import docker

    grid = make_grid()
    foreman = grid.foreman("node-a", slots=1)
    key = submit(grid, tmp_path, "t", ["sleep", "600"])
    running_on(grid, key)
    grid.client().cancel(key)
    wait_for(lambda: "cancelled by its owner" in foreman.text(), "the foreman to hear of it")
    from kolejka.worker.run import HOST_PID_LABEL

    engine = docker.from_env()
    mine = f"{HOST_PID_LABEL}={__import__('socket').gethostname()}:{foreman.process.pid}"
    wait_for(
        lambda: not engine.containers.list(all=True, filters={"label": mine}),
        "the task's container to go",
    )
    assert grid.client().task(key).state is TaskState.CANCELLED


def test_it_reports_a_missing_image_as_a_platform_failure(make_grid, tmp_path):
    grid = make_grid(KOLEJKA_MAX_ATTEMPTS="2", KOLEJKA_RETRY_AVOID="1s")
    grid.foreman("node-a")
    key = submit(grid, tmp_path, "t", ["true"], image="localhost:1/kolejka-test/none:v1")
    info = grid.wait_state(key, {TaskState.DONE, TaskState.FAILED})
    assert info.state is TaskState.FAILED
    assert info.attempts == 2
    assert "localhost:1/kolejka-test/none:v1" in (info.error or "")
