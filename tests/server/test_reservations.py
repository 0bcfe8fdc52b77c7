"""A wide task first in line reserves its node; later tasks start beside it only if they do not
delay it (backfill); a task asking more cpus than any node has runs on the largest node's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .flows import claim, finish, register, submit
from .harness import Api, Server

TWO_CORES = {"cpus": 2, "memory": "8G", "workspace": "10G"}


def narrow(api: Api, time: str) -> dict:
    return submit(api, limits={"cpus": 1, "time": time})


def started(api: Api, fred: Api, node: str) -> dict:
    """Claim the next task for `node` and mark it running."""
    got = claim(fred, node)
    assert got["task"] is not None, got
    beat = fred.post(f"leases/{got['lease']['id']}/heartbeat/", json={"running": True})
    assert beat.status_code == 200, beat.text
    return got


def reason(api: Api, key: str) -> str:
    return str(api.get(f"tasks/{key}/").json()["reason"] or "")


def test_it_reserves_the_node_for_a_wide_task_first_in_line(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    register(fred, "n1", capacity=TWO_CORES)
    narrow(bob, "30s")
    running = started(bob, fred, "n1")
    wide = submit(alice, limits={"cpus": 2, "time": "30s"})
    narrow(bob, "30s")
    narrow(bob, "30s")
    # One core is free and bob's tasks fit it, but alice's wide task is first in line (she runs
    # nothing) and bob's would end after the moment it can start: the core stays free.
    assert claim(fred, "n1")["task"] is None
    assert "node n1 is reserved for it; it starts by " in reason(alice, wide["key"])
    finish(fred, running["lease"]["id"])
    assert claim(fred, "n1")["task"]["key"] == wide["key"]
    assert alice.get(f"tasks/{wide['key']}/").json()["reason"] is None


def test_it_backfills_a_task_that_ends_before_the_wide_one_could_start(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    register(fred, "n1", capacity=TWO_CORES)
    narrow(bob, "60s")
    running = started(bob, fred, "n1")
    wide = submit(alice, limits={"cpus": 2, "time": "30s"})
    long = narrow(bob, "5min")
    short = narrow(bob, "5s")
    backfilled = claim(fred, "n1")
    assert backfilled["task"]["key"] == short["key"]  # ends well before bob's first may
    finish(fred, backfilled["lease"]["id"])
    assert claim(fred, "n1")["task"] is None  # the long one would delay the wide one
    finish(fred, running["lease"]["id"])
    assert claim(fred, "n1")["task"]["key"] == wide["key"]
    assert claim(fred, "n1")["task"] is None  # the wide task holds both cores
    assert bob.get(f"tasks/{long['key']}/").json()["state"] == "queued"


def test_it_starts_beside_a_reservation_what_fits_in_what_the_wide_task_leaves(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    register(fred, "n1", capacity={"cpus": 4, "memory": "8G", "workspace": "10G"})
    submit(bob, limits={"cpus": 2, "time": "60s"})
    started(bob, fred, "n1")
    submit(alice, limits={"cpus": 3, "time": "30s"})
    first = narrow(bob, "1h")
    narrow(bob, "1h")
    # Two cores are free; at the wide task's start three of four are its: one core is left,
    # and a task of bob's may have it however long it runs. The second would take the third.
    assert claim(fred, "n1")["task"]["key"] == first["key"]
    assert claim(fred, "n1")["task"] is None


def test_it_passes_over_a_task_another_node_holds_and_takes_it_when_it_fits(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    register(fred, "n1", capacity=TWO_CORES)
    register(fred, "n2", capacity=TWO_CORES)
    narrow(bob, "60s")
    started(bob, fred, "n1")
    wide = submit(alice, limits={"cpus": 2, "time": "30s"})
    later = narrow(bob, "60s")
    assert claim(fred, "n1")["task"] is None  # n1 holds the wide task
    # n2 has both cores free: the wide task fits there now, held or not.
    assert claim(fred, "n2")["task"]["key"] == wide["key"]
    assert claim(fred, "n1")["task"]["key"] == later["key"]  # nothing to hold for any more


def test_it_lets_one_node_of_two_reserving_at_once_hold_the_wide_task(grid: Server):
    alice, bob = grid.api("alice"), grid.api("bob")
    foremen = [grid.api("fred"), grid.api("fred")]
    for name in ("n1", "n2"):
        register(foremen[0], name, capacity=TWO_CORES)
        narrow(bob, "60s")
        started(bob, foremen[0], name)
    wide = submit(alice, limits={"cpus": 2, "time": "30s"})
    narrow(bob, "60s")
    narrow(bob, "60s")
    barrier = threading.Barrier(2)

    def race(index: int) -> dict:
        barrier.wait()
        return claim(foremen[index], f"n{index + 1}")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(race, range(2)))
    # One node holds the wide task and keeps its free core; the other passes over the task
    # held elsewhere and starts one of bob's.
    assert sorted(answer["task"] is None for answer in answers) == [False, True]
    holder = next(f"n{index + 1}" for index, a in enumerate(answers) if a["task"] is None)
    assert f"node {holder} is reserved for it" in reason(alice, wide["key"])


def test_it_gives_a_task_asking_more_cpus_than_any_node_has_the_largest_nodes(grid: Server):
    alice, fred = grid.api("alice"), grid.api("fred")
    register(fred, "small", capacity=TWO_CORES)
    register(fred, "large")  # 4 cpus
    huge = submit(alice, limits={"cpus": 64})
    assert reason(alice, huge["key"]) == ""  # not "no node can ever run it"
    assert claim(fred, "small")["task"] is None  # it waits for the largest node's cores
    got = claim(fred, "large")
    assert got["task"]["key"] == huge["key"]
    submit(alice, limits={"cpus": 1})
    assert claim(fred, "large")["task"] is None  # it holds all four cores
    finish(fred, got["lease"]["id"])
    assert claim(fred, "large")["task"] is not None


def test_it_reserves_the_node_for_an_exclusive_task_until_its_tasks_have_ended(grid: Server):
    alice, bob, fred = grid.api("alice"), grid.api("bob"), grid.api("fred")
    register(fred, "n1")  # 4 cpus
    narrow(bob, "60s")
    running = started(bob, fred, "n1")
    alone = submit(alice, exclusive=True, limits={"time": "30s"})
    narrow(bob, "60s")
    assert claim(fred, "n1", idle=False)["task"] is None  # three cores free, all held for it
    finish(fred, running["lease"]["id"])
    assert claim(fred, "n1", idle=True)["task"]["key"] == alone["key"]
