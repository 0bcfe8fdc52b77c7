"""Placement on a real grid with two users: a wide task first in line gets its node reserved and
starts within a bound while another user keeps submitting narrow tasks; a short task is
backfilled beside the reservation, a long one is not; a task asking more cpus than the node has
runs on the cores it has."""

from __future__ import annotations

import threading
from pathlib import Path

from kolejka.client import TaskState
from kolejka.common import Status

from ..client.live import wait_for
from .grid import Grid

FINAL = {TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED}
# The server's KOLEJKA_OVERRUN (default) and the grid's claim wait: what a reservation's bound
# adds to the running tasks' time limits.
OVERRUN, CLAIM_WAIT = 10.0, 2.0


class Stream:
    """Bob keeps `depth` one-core tasks queued until stopped: the load that starved wide tasks."""

    def __init__(self, grid: Grid, folder: Path, depth: int = 3) -> None:
        self.client = grid.client("bob")
        self.folder = folder
        self.depth = depth
        self.keys: list[str] = []
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                waiting = [key for key in self.keys if self.client.task(key).state == "queued"]
                for _ in range(self.depth - len(waiting)):
                    self.keys.append(self.client.submit(self.folder).key)
                self.stop.wait(0.2)  # the pace of a user's script, not a synchronisation
        except BaseException as error:  # reported by `close`
            self.failure = error

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert self.failure is None, self.failure


def test_it_starts_a_wide_task_within_its_bound_while_another_user_streams_narrow_ones(
    make_grid, tmp_path
):
    grid = make_grid()
    narrow = grid.task(tmp_path / "narrow", ["sleep", "2"], limits={"cpus": 1, "time": "20s"})
    wide = grid.task(tmp_path / "wide", ["true"], limits={"cpus": 2, "time": "20s"})
    node = grid.foreman("node-a", "--cpus", "2", slots=2)
    bob, alice = grid.client("bob"), grid.client("alice")
    with Stream(grid, narrow) as stream:
        wait_for(
            lambda: len([k for k in stream.keys if bob.task(k).state == "running"]) == 2,
            "bob's tasks to fill both cores",
            120,
        )
        key = alice.submit(wide).key
        # The bound: bob's running tasks end by their time limit and the overrun, and the
        # foreman asks again within one claim wait.
        bound = 20 + OVERRUN + CLAIM_WAIT
        info = grid.wait_state(key, {TaskState.RUNNING, *FINAL}, deadline=3 * bound)
        assert info.started is not None and info.created is not None
        waited = (info.started - info.created).total_seconds()
        bobs = [bob.task(k) for k in stream.keys]
        ahead = [b for b in bobs if b.started and b.created and b.created < info.created]
        overtook = [
            b
            for b in bobs
            if b.started and b.created and info.created < b.created and b.started < info.started
        ]
        print(
            f"the wide task waited {waited:.1f} s; {len(ahead)} of bob's tasks queued before it "
            f"started first, {len(overtook)} queued after it overtook it"
        )
    assert waited <= bound, node.text()
    # Bob's tasks queued before it were ahead in line; none queued after it may start before
    # it, as none of them (20 s each) would end before it could start.
    assert not overtook
    done = grid.wait_state(key, FINAL)
    assert done.state is TaskState.DONE and done.result is not None
    assert done.result.limits.cpus == 2


def test_it_backfills_a_short_task_but_not_a_long_one_beside_a_reservation(make_grid, tmp_path):
    grid = make_grid()
    bob, alice = grid.client("bob"), grid.client("alice")
    node = grid.foreman("node-a", "--cpus", "2", slots=2)
    first = bob.submit(
        grid.task(tmp_path / "first", ["sleep", "12"], limits={"cpus": 1, "time": "60s"})
    ).key
    grid.wait_state(first, {TaskState.RUNNING}, user="bob")
    wide = alice.submit(
        grid.task(tmp_path / "wide", ["true"], limits={"cpus": 2, "time": "30s"})
    ).key
    long = bob.submit(
        grid.task(tmp_path / "long", ["sleep", "1"], limits={"cpus": 1, "time": "5min"})
    ).key
    short = bob.submit(
        grid.task(tmp_path / "short", ["sleep", "1"], limits={"cpus": 1, "time": "3s"})
    ).key
    infos = {
        key: grid.wait_state(key, FINAL, user=user)
        for key, user in ((first, "bob"), (wide, "alice"), (long, "bob"), (short, "bob"))
    }
    assert {info.state for info in infos.values()} == {TaskState.DONE}, node.text()
    started = {key: info.started for key, info in infos.items()}
    finished = {key: info.finished for key, info in infos.items()}
    assert all(started.values()) and all(finished.values())
    # The short one ends long before bob's first may, so it ran on the free core meanwhile.
    assert started[short] < started[wide] and finished[short] < finished[first]
    # The long one would have delayed the wide one: it started only after it.
    assert started[long] > started[wide]


def test_it_runs_a_task_asking_more_cpus_than_the_node_has_on_the_node_s_cores(make_grid, tmp_path):
    grid = make_grid()
    grid.foreman("node-a", "--cpus", "1", slots=1)
    folder = grid.task(
        tmp_path / "t",
        ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
        limits={"cpus": 8},
        stdout="out.txt",
    )
    client = grid.client()
    key = client.submit(folder).key
    info = grid.wait_state(key, FINAL)
    assert info.state is TaskState.DONE, info.error
    result = client.result(key)
    assert result.status is Status.OK
    assert result.limits.cpus == 1  # the cores it got, not the eight it asked
    client.fetch_result(key, tmp_path / "result")
    assert (tmp_path / "result" / "out.txt").read_text().split()[1] == str(
        result.limits.cpus_offset
    )
