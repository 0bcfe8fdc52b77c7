"""Logs while running: the node streams a task's output in chunks (`POST leases/{id}/log/`),
readers read it by offset and long-poll for more (`GET tasks/{key}/log/`)."""

from __future__ import annotations

import base64
import threading
from typing import Any

from .flows import claim, eventually, register, result, submit, upload
from .harness import Api, Server


def send(fred: Api, lease: str, offset: int, data: bytes, **fields: Any) -> Any:
    body = {"stream": "stdout", "offset": offset, "data": base64.b64encode(data).decode()}
    return fred.post(f"leases/{lease}/log/", json={**body, **fields})


def read(api: Api, key: str, **params: Any) -> dict[str, Any]:
    answer = api.get(f"tasks/{key}/log/", params=params)
    assert answer.status_code == 200, answer.text
    part = dict(answer.json())
    part["bytes"] = base64.b64decode(part["data"])
    return part


def running(server: Server) -> tuple[Api, Api, str, str]:
    """alice's task, running on fred's node n1: the clients, its key and its lease."""
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice, stdout="out.txt")
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    assert fred.post(f"leases/{lease}/heartbeat/", json={"running": True}).status_code == 200
    return alice, fred, task["key"], lease


def test_it_shows_what_the_node_streamed_while_the_task_runs(grid: Server):
    alice, fred, key, lease = running(grid)
    assert send(fred, lease, 0, b"one\n").json() == {"next": 4}
    assert send(fred, lease, 4, b"two\nthr").json() == {"next": 11}
    whole = read(alice, key)
    assert whole["bytes"] == b"one\ntwo\nthr"
    assert (whole["offset"], whole["next"], whole["size"], whole["attempt"]) == (0, 11, 11, 1)
    assert (whole["complete"], whole["truncated"]) == (False, False)
    assert read(alice, key, offset=6)["bytes"] == b"o\nthr"  # from inside a chunk
    assert read(alice, key, offset=2, limit=5)["bytes"] == b"e\ntwo"  # across chunks
    assert read(grid.api("ivan"), key)["bytes"] == b"one\ntwo\nthr"  # inspectors read all
    assert read(alice, key, stream="stderr")["bytes"] == b""


def test_it_stores_a_chunk_sent_again_once(grid: Server):
    alice, fred, key, lease = running(grid)
    assert send(fred, lease, 0, b"one\n").json() == {"next": 4}
    assert send(fred, lease, 0, b"one\n").json() == {"next": 4}  # its answer was lost
    assert send(fred, lease, 2, b"e\ntwo\n").json() == {"next": 8}  # overlapping the end
    assert read(alice, key)["bytes"] == b"one\ntwo\n"


def test_it_refuses_a_gap_naming_the_offset_and_stores_nothing(grid: Server):
    alice, fred, key, lease = running(grid)
    send(fred, lease, 0, b"one\n")
    gap = send(fred, lease, 9, b"lost\n")
    assert gap.status_code == 409 and gap.json()["field"] == "offset", gap.text
    assert "send from 4" in gap.json()["detail"]
    assert read(alice, key)["bytes"] == b"one\n"


def test_it_refuses_bad_chunks_with_the_field_named(shared: Server):
    alice, fred, key, lease = running(shared)
    too_long = base64.b64encode(bytes(65537)).decode()
    for body, field in (
        ({"stream": "stdout", "offset": 0, "data": "not base64!"}, "data"),
        ({"stream": "stdout", "offset": 0, "data": too_long}, "data"),
        ({"stream": "stdin", "offset": 0, "data": ""}, "stream"),
        ({"stream": "stdout", "offset": -1, "data": ""}, "offset"),
        ({"stream": "stdout", "offset": 0, "data": "", "extra": 1}, "extra"),
    ):
        answer = fred.post(f"leases/{lease}/log/", json=body)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    bad = alice.get(f"tasks/{key}/log/", params={"stream": "stdin"})
    assert bad.status_code == 400 and bad.json()["field"] == "stream", bad.text
    assert read(alice, key)["size"] == 0


def test_it_refuses_chunks_from_a_stale_lease(short_leases: Server):
    alice, fred, gina = (short_leases.api(name) for name in ("alice", "fred", "gina"))
    key = submit(alice, stdout="out.txt")["key"]
    register(fred, "slow")
    register(gina, "fast")
    stale = claim(fred, "slow")["lease"]["id"]
    assert send(fred, stale, 0, b"first try\n").status_code == 200
    fresh = eventually(lambda: claim(gina, "fast")["lease"], what="the task to be taken over")
    refused = send(fred, stale, 10, b"late\n")
    assert refused.status_code == 409 and refused.json()["code"] == "lease_lost"
    # The log shown is the last attempt's, which starts again at offset 0.
    assert (read(alice, key)["bytes"], read(alice, key)["attempt"]) == (b"", 2)
    assert send(gina, fresh["id"], 0, b"second\n").status_code == 200
    part = read(alice, key)
    assert (part["bytes"], part["attempt"]) == (b"second\n", 2)


def test_it_keeps_the_log_of_a_cancelled_task_and_its_last_lines(grid: Server):
    alice, fred, key, lease = running(grid)
    send(fred, lease, 0, b"started\n")
    assert alice.post(f"tasks/{key}/cancel/").status_code == 200
    # The node hears of the cancel, kills the task and sends what it printed until then.
    assert send(fred, lease, 8, b"killed\n").json() == {"next": 15}
    part = read(alice, key)
    assert (part["bytes"], part["complete"]) == (b"started\nkilled\n", True)
    assert fred.post(f"leases/{lease}/result/", json=result()).status_code == 409


def test_it_shows_a_done_task_log_from_its_result_file(grid: Server):
    alice, fred, key, lease = running(grid)
    send(fred, lease, 0, b"partial\n")
    reference = upload(fred, b"partial\nand the rest\n")
    files = {"out.txt": {"reference": reference}}
    done = fred.post(f"leases/{lease}/result/", json=result(status="OUTPUT_LIMIT", files=files))
    assert done.status_code == 201, done.text
    part = read(alice, key, offset=8)
    assert part["bytes"] == b"and the rest\n"
    assert (part["size"], part["complete"], part["truncated"]) == (21, True, True)


def test_it_cuts_a_stream_at_the_server_cap_and_says_so(templates, tmp_path):
    from .harness import serve

    with serve(templates["sqlite"], tmp_path / "data", KOLEJKA_LOG_MAX_SIZE="10") as server:
        alice, fred, key, lease = running(server)
        assert send(fred, lease, 0, b"0123456").json() == {"next": 7}
        assert send(fred, lease, 7, b"789abcdef").json() == {"next": 10}
        assert send(fred, lease, 10, b"more").json() == {"next": 10}
        part = read(alice, key)
        assert (part["bytes"], part["truncated"]) == (b"0123456789", True)


def test_it_marks_a_stream_the_node_cut_at_its_cap(grid: Server):
    alice, fred, key, lease = running(grid)
    assert send(fred, lease, 0, b"capped", truncated=True).json() == {"next": 6}
    assert send(fred, lease, 6, b"never").json() == {"next": 6}
    assert read(alice, key)["truncated"] is True


def test_it_hides_the_log_from_other_users(grid: Server):
    _, fred, key, lease = running(grid)
    send(fred, lease, 0, b"secret\n")
    assert grid.api("bob").get(f"tasks/{key}/log/").status_code == 404
    assert grid.api("fred").get(f"tasks/{key}/log/").status_code == 403


def test_it_wakes_a_waiting_reader_when_a_chunk_arrives(grid: Server):
    alice, fred, key, lease = running(grid)
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(read(alice, key, offset=0, wait=60)), daemon=True
    )
    waiting.start()
    send(fred, lease, 0, b"hello\n")
    waiting.join(timeout=120)
    assert answers and answers[0]["bytes"] == b"hello\n"


def test_it_answers_a_waiting_reader_when_the_task_ends(grid: Server):
    alice, _, key, _ = running(grid)
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(read(alice, key, offset=0, wait=60)), daemon=True
    )
    waiting.start()
    assert alice.post(f"tasks/{key}/cancel/").status_code == 200
    waiting.join(timeout=120)
    assert answers and (answers[0]["bytes"], answers[0]["complete"]) == (b"", True)
