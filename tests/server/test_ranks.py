"""An owner's own order (`rank`): it reorders the owner's queued tasks among themselves and never
puts one ahead of another user's."""

from __future__ import annotations

from typing import Any

from .flows import claim, finish, register, spec
from .harness import Api, Server


def submitted(api: Api, rank: int = 0, **fields: Any) -> str:
    answer = api.post("tasks/", json={"task": spec(**fields), "rank": rank})
    assert answer.status_code == 201, answer.text
    assert answer.json()["rank"] == rank
    return str(answer.json()["key"])


def order(fred: Api, count: int) -> list[str]:
    """The keys of the next `count` claims, each finished before the next (fair share even)."""
    keys = []
    for _ in range(count):
        answer = claim(fred, "n1", wait=0)
        assert answer["task"] is not None
        keys.append(answer["task"]["key"])
        finish(fred, answer["lease"]["id"])
    return keys


def test_it_claims_an_owners_tasks_in_her_own_order_then_by_age(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    old, young, wanted = submitted(alice), submitted(alice), submitted(alice, rank=5)
    last = submitted(alice, rank=-1)
    assert alice.get(f"tasks/{wanted}/why/").json()["position"] == 1
    assert alice.get(f"tasks/{last}/why/").json()["position"] == 4
    assert order(fred, 4) == [wanted, old, young, last]


def test_it_never_puts_an_owners_ranked_task_ahead_of_another_users(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    register(fred, "n1")
    bobs = submitted(bob)
    alices = submitted(alice)
    wanted = submitted(alice, rank=1000)
    bobs_later = submitted(bob)
    # Alice's wanted task takes the place of her oldest, never bob's older one.
    assert order(fred, 4) == [bobs, wanted, alices, bobs_later]


def test_it_changes_the_rank_of_a_task_and_of_a_batch_later(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1")
    batch = alice.post("tasks/batch/", json={"tasks": [{"task": spec()}] * 2}).json()
    first, second = (task["key"] for task in batch["tasks"])
    alone = submitted(alice)
    moved = alice.post(f"tasks/{second}/rank/", json={"rank": 3})
    assert moved.status_code == 200 and moved.json()["rank"] == 3
    assert order(fred, 1) == [second]
    lowered = alice.post(f"batches/{batch['batch']}/rank/", json={"rank": -2})
    assert lowered.status_code == 200 and lowered.json()["changed"] == 1
    assert order(fred, 2) == [alone, first]


def test_it_refuses_a_rank_that_is_not_a_whole_number_and_bobs_change_of_alices(grid: Server):
    alice, bob = grid.api("alice"), grid.api("bob")
    key = submitted(alice)
    bad = alice.post(f"tasks/{key}/rank/", json={"rank": "high"})
    assert bad.status_code == 400 and bad.json()["field"] == "rank"
    assert bob.post(f"tasks/{key}/rank/", json={"rank": 1}).status_code == 404
    assert alice.get(f"tasks/{key}/").json()["rank"] == 0


def test_it_reads_an_owners_queue_in_her_order_past_tasks_that_do_not_fit(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "n1", tags=["cpu"])
    # More than a claim's window of high-ranked tasks no node can run, then ones that fit.
    for _ in range(20):
        submitted(alice, rank=5, requires=["gpu-x"])
    low = [submitted(alice) for _ in range(2)]
    high = [submitted(alice, rank=1) for _ in range(2)]
    assert order(fred, 4) == [*high, *low]
