"""Every ``kolejka-client`` command against a real server: its happy path, its ``--json`` answer
and its error path (one line, the right exit status)."""

import json
import threading

import pytest

from .conftest import make_task


def one_line_error(done, status: int, *parts: str) -> None:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert done.stderr.startswith("kolejka-client: error: ")
    assert done.stderr.count("\n") == 1, done.stderr
    for part in parts:
        assert part in done.stderr


def test_it_puts_a_task_and_prints_its_key(cli, server, task_dir):
    done = cli("task", "put", str(task_dir))
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert server.client("alice").task(key).state == "queued"
    as_json = json.loads(cli("task", "put", "--json", str(task_dir)).stdout)
    assert as_json["state"] == "queued" and as_json["key"].startswith("t-")


def test_it_gets_a_task_back_as_a_folder(cli, server, task_dir, tmp_path):
    key = server.client("alice").submit(task_dir).key
    done = cli("task", "get", key, str(tmp_path / "copy"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy" / "in.txt").read_text() == "input\n"
    spec = json.loads((tmp_path / "copy" / "kolejka_task.json").read_text())
    assert spec["files"] == {"in.txt": {"path": "in.txt"}}


def test_it_says_which_key_is_unknown(cli, tmp_path):
    for args in (["task", "get", "t-nope", str(tmp_path / "x")], ["task", "status", "t-nope"],
                 ["task", "cancel", "t-nope"], ["result", "get", "t-nope", str(tmp_path / "x")],
                 ["result", "wait", "t-nope"]):  # fmt: skip
        one_line_error(cli(*args), 2, "task t-nope: ")


def test_it_does_not_show_another_users_task(cli, server, task_dir):
    key = server.client("alice").submit(task_dir).key
    one_line_error(cli("task", "status", key, user="bob"), 2, f"task {key}")


def test_it_lists_tasks_by_state(cli, server, tmp_path, tag):
    alice = server.client("alice")
    queued = alice.submit(make_task(tmp_path / "a", tag)).key
    cancelled = alice.submit(make_task(tmp_path / "b", tag)).key
    alice.cancel(cancelled)
    done = cli("task", "list")
    assert done.returncode == 0 and done.stdout.startswith("KEY")
    assert queued in done.stdout and cancelled in done.stdout
    only = cli("task", "list", "--state", "cancelled").stdout
    assert cancelled in only and queued not in only
    both = json.loads(
        cli("task", "list", "--json", "--state", "queued", "--state", "cancelled").stdout
    )
    assert {queued, cancelled} <= {item["key"] for item in both}
    assert len(json.loads(cli("task", "list", "--json", "--limit", "1").stdout)) == 1


def test_it_refuses_an_unknown_state(cli):
    done = cli("task", "list", "--state", "sleeping")
    assert done.returncode == 2 and "invalid choice: 'sleeping'" in done.stderr


def test_it_shows_a_tasks_status(cli, server, task_dir):
    key = server.client("alice").submit(task_dir).key
    done = cli("task", "status", key)
    assert done.returncode == 0
    assert f"key       {key}" in done.stdout and "state     queued" in done.stdout
    assert json.loads(cli("task", "status", "--json", key).stdout)["key"] == key


def test_it_cancels_a_task_and_refuses_to_cancel_a_finished_one(
    cli, server, foreman, task_dir, tmp_path
):
    key = server.client("alice").submit(task_dir).key
    done = cli("task", "cancel", key)
    assert (done.returncode, done.stdout) == (0, f"{key}: cancelled\n")
    finished = server.client("alice").submit(task_dir).key
    foreman.run(tmp_path / "node")
    one_line_error(cli("task", "cancel", finished), 2, f"task {finished}")


def test_it_gets_a_result_and_says_when_there_is_none_yet(cli, server, foreman, task_dir, tmp_path):
    key = server.client("alice").submit(task_dir).key
    early = cli("result", "get", key, str(tmp_path / "r"))
    one_line_error(early, 2, f"task {key} has no result yet (it is queued); wait for it with")
    foreman.run(tmp_path / "node", outputs={"sub/deep.txt": b"deep\n"})
    done = cli("result", "get", key, str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "sub" / "deep.txt").read_bytes() == b"deep\n"
    assert done.stdout.startswith(f"{key}: OK (exit 0)")
    document = json.loads(cli("result", "get", "--json", key, str(tmp_path / "r2")).stdout)
    assert document["result"]["files"] == {"sub/deep.txt": {"path": "sub/deep.txt"}}


def test_it_waits_for_a_result(cli, server, foreman, task_dir, tmp_path):
    key = server.client("alice").submit(task_dir).key
    threading.Thread(target=foreman.run, args=(tmp_path / "node",), kwargs={"code": 3,
                     "status": "RUNTIME_ERROR"}, daemon=True).start()  # fmt: skip
    done = cli("result", "wait", key, str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr
    assert f"{key}: done" in done.stderr and "RUNTIME_ERROR (exit 3)" in done.stdout
    assert (tmp_path / "r" / "out.txt").exists()
    again = cli("result", "wait", "--json", key)
    assert again.returncode == 1
    assert json.loads(again.stdout)["result"]["status"] == "RUNTIME_ERROR"


def test_it_puts_and_gets_blobs(cli, tmp_path):
    (tmp_path / "data").write_bytes(b"blob data\n" * 1000)
    done = cli("blob", "put", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    reference = done.stdout.strip()
    assert len(reference) == 64
    got = cli("blob", "get", reference, str(tmp_path / "copy"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "copy").read_bytes() == (tmp_path / "data").read_bytes()
    document = json.loads(cli("blob", "put", "--json", str(tmp_path / "data")).stdout)
    assert document == {"reference": reference, "size": 10000}


def test_it_says_what_is_wrong_with_a_blob_command(cli, tmp_path):
    one_line_error(cli("blob", "put", str(tmp_path / "missing")), 2, "missing: cannot read it")
    one_line_error(cli("blob", "get", "0" * 64, str(tmp_path / "x")), 2, f"blob {'0' * 64}")
    assert not (tmp_path / "x").exists()


def test_it_shows_queue_statistics(cli):
    done = cli("queue", "stats")
    assert done.returncode == 0 and done.stdout.startswith("STATE")
    assert "states" in json.loads(cli("queue", "stats", "--json").stdout)


def test_it_answers_errors_as_json_for_scripts(cli, tmp_path, tag):
    folder = make_task(tmp_path / "bad", tag, limits={"pids": 0})
    done = cli("task", "put", "--json", str(folder))
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert document["field"] == "limits.pids" and document["exit_code"] == 2


@pytest.mark.parametrize("server_url", ["http://127.0.0.1:9", "not-a-url"])
def test_it_says_when_the_server_url_is_bad(cli, server_url):
    done = cli("queue", "stats", "--retries", "0", KOLEJKA_SERVER=server_url)
    assert done.returncode in (2, 3)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert server_url in done.stderr


def test_it_says_when_the_url_is_not_a_kolejka_server(cli, server):
    done = cli("queue", "stats", KOLEJKA_SERVER=server.url + "/admin")
    one_line_error(done, 2, f"is {server.url}/admin a kolejka server?")


def test_it_refuses_a_bad_token_with_a_hint(cli):
    done = cli("queue", "stats", KOLEJKA_TOKEN="0" * 40)
    one_line_error(done, 2, "kolejka-client login")


def test_it_stores_an_image_tarball_for_admins_only(cli, server, tmp_path):
    tarball = tmp_path / "image.tar"
    tarball.write_bytes(b"not really a docker save tarball\n" * 100)
    done = cli("image", "put", "kolejka/demo:1", str(tarball), user="ada")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("kolejka/demo:1: ") and "(3.22kB)" in done.stdout
    [image] = server.client("fred").images("kolejka/demo:1")
    assert image.size == 3300
    listed = cli("image", "list", "--json", "--name", "kolejka/demo:1")
    assert json.loads(listed.stdout)[0]["reference"] == image.reference
    assert "kolejka/demo:1" in cli("image", "list").stdout
    one_line_error(cli("image", "put", "kolejka/other:1", str(tarball)), 2, "image kolejka/other:1")
    assert server.client("fred").images("kolejka/other:1") == []
    one_line_error(cli("image", "put", "x:1", str(tmp_path / "none"), user="ada"), 2, "none")
