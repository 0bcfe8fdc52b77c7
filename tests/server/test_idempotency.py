"""``Idempotency-Key`` on a submission: the same submission sent again (its answer was lost)
finds its task instead of queueing a second one, also when both copies arrive at once."""

from __future__ import annotations

import threading

import pytest

from .flows import spec
from .harness import Server


def post(server: Server, key: str, user: str = "alice", **fields: object):
    return server.api(user).post(
        "tasks/",
        json={"task": spec(requires=["nowhere"], **fields)},
        headers={"Idempotency-Key": key},
    )


def queued(server: Server, user: str = "alice") -> list[str]:
    answer = server.api(user).get("tasks/", params={"state": "queued"})
    return [task["key"] for task in answer.json()["results"]]


def test_it_answers_a_submission_sent_again_with_the_task_it_queued(server: Server):
    first = post(server, "sub-1")
    again = post(server, "sub-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = post(server, "sub-2")
    assert other.status_code == 201 and other.json()["key"] != first.json()["key"]
    # Keys are each user's own.
    assert post(server, "sub-1", user="bob").status_code == 201
    assert sorted(queued(server)) == sorted([first.json()["key"], other.json()["key"]])


def test_it_refuses_a_key_that_queued_another_submission(server: Server):
    assert post(server, "sub-1").status_code == 201
    changed = post(server, "sub-1", args=["false"])
    assert changed.status_code == 409 and changed.json()["field"] == "Idempotency-Key"
    assert len(queued(server)) == 1


@pytest.mark.parametrize("key", ["", "a" * 65, "with space", "k/ey", "k%00"])
def test_it_refuses_a_key_it_cannot_keep(shared: Server, key: str):
    answer = post(shared, key)
    assert answer.status_code == 400 and answer.json()["field"] == "Idempotency-Key"


def test_it_queues_one_task_for_copies_that_arrive_at_once(grid: Server):
    start = threading.Barrier(8)
    answers: list = []

    def send() -> None:
        start.wait()
        answers.append(post(grid, "at-once"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201], [
        answer.text for answer in answers
    ]
    assert len({answer.json()["key"] for answer in answers}) == 1
    assert len(queued(grid)) == 1
