"""`KolejkaClient` against a real server: the user's calls and the foreman's."""

import pytest

from kolejka.client import (
    AuthenticationFailed,
    BadRequest,
    Conflict,
    KolejkaClient,
    LeaseLost,
    NotFinished,
    NotFound,
    TaskState,
)
from kolejka.common import Result, SpecError, Status, Task

from .conftest import make_task
from .live import PASSWORD, StandInForeman, wait_for


def test_it_logs_in_with_a_password_and_knows_who_it_is(server):
    client = KolejkaClient(server.url, username="alice", password=PASSWORD)
    assert client.whoami().username == "alice"
    assert client.token is not None


def test_it_refuses_a_wrong_password(server):
    client = KolejkaClient(server.url, username="alice", password="wrong")
    with pytest.raises(AuthenticationFailed):
        client.whoami()


def test_it_uploads_a_blob_once_and_downloads_it_checked(server, tmp_path):
    client = server.client("alice")
    source = tmp_path / "data.bin"
    source.write_bytes(b"x" * 100_000)
    blob = client.put_blob(source)
    assert blob.size == 100_000 and client.blob_exists(blob.reference)
    assert client.put_blob(source) == blob
    copy = client.get_blob(blob.reference, tmp_path / "copy.bin")
    assert copy == blob and (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_it_does_not_see_another_users_blob(server):
    blob = server.client("alice").put_bytes(b"alice's secret " + PASSWORD.encode())
    assert not server.client("bob").blob_exists(blob.reference)
    with pytest.raises(NotFound):
        server.client("bob").get_blob(blob.reference, "/nonexistent/never-written")


def test_it_submits_a_folder_with_its_files_as_references(server, task_dir):
    info = server.client("alice").submit(task_dir)
    assert info.state == TaskState.QUEUED
    assert info.task is not None and info.task.files["in.txt"].reference is not None


def test_it_submits_the_files_a_folder_entry_gives_one_by_one(server, tmp_path, tag):
    tests = tmp_path / "task" / "tests"
    tests.mkdir(parents=True)
    (tests / "1.in").write_text("one\n")
    (tests / "2.in").write_text("two\n")
    folder = make_task(tmp_path / "task", tag, files={"t": {"folder": "tests"}})
    info = server.client("alice").submit(folder)
    assert info.task is not None and sorted(info.task.files) == ["t/1.in", "t/2.in"]
    assert all(spec.reference is not None for spec in info.task.files.values())


def test_it_submits_a_task_built_in_memory(server, tmp_path, tag):
    (tmp_path / "in.txt").write_text("data\n")
    task = Task.from_dict(
        {
            "image": "kolejka/busybox:latest",
            "args": ["cat", "in.txt"],
            "requires": [tag],
            "files": {"in.txt": "in.txt"},
        }
    )
    info = server.client("alice").submit(task, folder=tmp_path)
    assert info.task is not None and info.task.requires == (tag,)


def test_it_refuses_an_invalid_task_naming_the_field_before_sending_it(server, tmp_path, tag):
    folder = make_task(tmp_path / "bad", tag, limits={"memory": "64X"})
    with pytest.raises(SpecError) as caught:
        server.client("alice").submit(folder)
    assert caught.value.field == "limits.memory"


def test_it_reports_the_servers_refusal_naming_the_field(server, tag):
    # A reference the caller may not read passes the format's rules; the server refuses it.
    task = Task.from_dict(
        {
            "image": "kolejka/busybox:latest",
            "args": ["true"],
            "requires": [tag],
            "files": {"in.txt": {"reference": "0" * 64}},
        }
    )
    with pytest.raises(BadRequest) as caught:
        server.client("alice").submit(task)
    assert caught.value.field == "task.files.in.txt.reference"


def test_it_runs_a_task_through_the_node_calls_and_fetches_the_result(
    server, foreman, task_dir, tmp_path
):
    alice = server.client("alice")
    info = alice.submit(task_dir)
    with pytest.raises(NotFinished):
        alice.result(info.key)
    done = foreman.run(tmp_path / "node-result", outputs={"out.txt": b"input\n"})
    assert done.key == info.key and done.state == TaskState.DONE
    seen = []
    final = alice.wait(info.key, on_change=seen.append)
    assert final.state == TaskState.DONE and seen[-1].state == TaskState.DONE
    result = alice.fetch_result(info.key, tmp_path / "result")
    assert result.status == Status.OK
    assert (tmp_path / "result" / "out.txt").read_bytes() == b"input\n"
    assert (tmp_path / "result" / "kolejka_result.json").exists()
    task = alice.fetch_task(info.key, tmp_path / "again")
    assert (tmp_path / "again" / "in.txt").read_text() == "input\n"
    assert task.files["in.txt"].path == "in.txt"


def test_it_sees_each_change_of_state_by_long_poll(server, foreman, task_dir, tmp_path):
    import threading

    alice = server.client("alice")
    info = alice.submit(task_dir)
    seen = []
    waiter = threading.Thread(target=lambda: alice.wait(info.key, on_change=seen.append))
    waiter.start()
    wait_for(lambda: seen, "the waiter to see the task queued")
    foreman.run(tmp_path / "node-result")
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    states = [item.state for item in seen]
    assert states[0] == TaskState.QUEUED and states[-1] == TaskState.DONE
    # Each change once and in order; a quick foreman may pass a state between two polls.
    order = [TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.DONE]
    assert states == [state for state in order if state in states]


def test_it_cancels_and_the_foreman_hears_it_on_its_heartbeat(server, foreman, task_dir):
    alice = server.client("alice")
    info = alice.submit(task_dir)
    claim = foreman.claim()
    assert claim.task is not None and claim.task.key == info.key
    assert not foreman.client.heartbeat(claim.lease).cancel
    assert alice.cancel(info.key).state == TaskState.CANCELLED
    assert foreman.client.heartbeat(claim.lease).cancel
    with pytest.raises(LeaseLost):
        foreman.client.post_result(claim.lease, Result(status=Status.OK, result=0))
    assert alice.retry(info.key).state == TaskState.QUEUED
    with pytest.raises(Conflict):
        alice.retry(info.key)
    alice.cancel(info.key)


def test_it_requeues_on_failure_and_refuses_a_stale_lease(server, foreman, task_dir, tag):
    alice = server.client("alice")
    info = alice.submit(task_dir)
    first = foreman.claim()
    requeued = foreman.client.fail(first.lease, "image missing", retry=True)
    assert requeued.state == TaskState.QUEUED
    with pytest.raises(LeaseLost):
        foreman.client.heartbeat(first.lease)
    elsewhere = StandInForeman(server, tag, name=f"node-{tag}-b")  # the retry avoids the first
    second = elsewhere.claim()
    assert second.task.key == info.key and second.lease.attempt == 2
    elsewhere.client.release(second.lease)
    assert alice.task(info.key).state == TaskState.QUEUED


def test_it_reports_no_task_when_none_comes(server, foreman):
    claim = foreman.client.claim(foreman.name, foreman.free, idle=True, wait=0)
    assert claim.lease is None and claim.task is None


def test_it_lists_its_tasks_and_counts_them(server, tmp_path, tag):
    alice = server.client("alice")
    keys = {alice.submit(make_task(tmp_path / f"t{i}", tag)).key for i in range(3)}
    listed = {info.key for info in alice.tasks(state="queued")}
    assert keys <= listed
    assert len(list(alice.tasks(limit=2))) == 2
    assert alice.queue_stats().states.get("queued", 0) >= 3
    assert not keys & {info.key for info in server.client("bob").tasks()}


def test_it_submits_a_batch_all_or_nothing(server, tmp_path, tag):
    alice = server.client("alice")
    batch = alice.submit_batch([make_task(tmp_path / f"b{i}", tag) for i in range(2)])
    assert len(batch.tasks) == 2
    progress = alice.batch(batch.batch)
    assert progress.total == 2 and progress.states.get("queued") == 2


def test_it_stores_an_image_for_the_foremen(server):
    ada, fred = server.client("ada"), server.client("fred")
    blob = ada.put_bytes(b"not really a docker save tarball")
    image = ada.put_image(f"test/image:{blob.reference[:8]}", blob.reference)
    assert image.reference == blob.reference
    found = fred.images(image.name)
    assert [item.reference for item in found] == [blob.reference]
