"""Sessions on this host's real cgroups (v1), with real processes that attach themselves."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kolejka.common import Limits
from kolejka.observer.cgroups import Hierarchy
from kolejka.observer.sessions import RUN_POLL_MAX, Reason, Session, State

from ..worker.helpers import wait_for

MiB = 2**20


class Program:
    """A Python program that waits on stdin until attached, then does `work`."""

    def __init__(self, work: str) -> None:
        code = f"import sys, time\nsys.stdin.read(1)\n{work}\n"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"x")
        self.process.stdin.close()

    def wait(self) -> int:
        return self.process.wait(timeout=60)


@pytest.fixture
def session(clean) -> Iterator[Callable[..., Session]]:
    """Opens sessions under the run's base; closes them after the test and checks that their
    groups are gone from every hierarchy."""
    opened: list[Session] = []

    def open_session(limits: Limits) -> Session:
        path = f"{clean.cgroup_base}/{secrets.token_hex(4)}"
        opened.append(Session(Hierarchy.discover().group(path), limits, container=False))
        return opened[-1]

    yield open_session
    for item in opened:
        item.close()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/{item.cgroup.path}"))


def test_it_counts_the_cpu_of_a_process_from_its_attach(session):
    program = Program("start = time.process_time()\nwhile time.process_time() - start < 0.3: pass")
    watched = session(Limits(time=30))
    watched.attach(program.process.pid)
    program.go()
    assert program.wait() == 0
    report = watched.close()
    assert report.state is State.CLOSED and report.killed is None
    assert 0.3 <= (report.stats.cpu.usage or 0) < 0.4
    assert report.stats.time is not None and report.stats.time >= 0.3


def test_it_kills_a_session_past_its_cpu_time(session):
    program = Program("while True: pass")
    watched = session(Limits(cpu_time=0.2, time=30))
    watched.attach(program.process.pid)
    program.go()
    assert program.wait() == -9
    report = watched.close()
    assert report.killed is Reason.CPU_TIME
    assert (report.stats.cpu.usage or 0) >= 0.2


def test_it_kills_a_session_past_its_wall_time(session):
    program = Program("time.sleep(60)")
    watched = session(Limits(time=0.3))
    watched.attach(program.process.pid)
    program.go()
    assert program.wait() == -9
    report = watched.close()
    assert report.killed is Reason.TIME
    assert (report.stats.cpu.usage or 1) < 0.05


def test_it_kills_nested_sessions_with_their_parent(session):
    program = Program("time.sleep(60)")
    outer = session(Limits(time=0.3))
    inner = outer.open_child(Limits(memory=64 * MiB))
    inner.attach(program.process.pid)
    program.go()
    assert program.wait() == -9
    wait_for(lambda: outer.report().killed, "the outer session to be killed")
    assert outer.report().killed is Reason.TIME
    assert inner.report().killed is None  # killed by its parent's limit, not its own
    outer.close()
    assert inner.state is State.CLOSED


def test_it_bounds_a_nested_session_by_its_parent(session):
    outer = session(Limits(memory=64 * MiB, pids=10, cpus=1))
    inner = outer.open_child(Limits(memory=256 * MiB, pids=5, time=3))
    assert (inner.limits.memory, inner.limits.pids, inner.limits.cpus) == (64 * MiB, 5, 1)
    assert inner.limits.time == 3
    outer.close()


def test_it_limits_memory_and_counts_the_oom_kill(session):
    program = Program("blocks = [bytearray(2**20) for _ in range(200)]")
    watched = session(Limits(memory=48 * MiB, swap=0, time=30))
    watched.attach(program.process.pid)
    program.go()
    assert program.wait() == -9
    report = watched.close()
    assert (report.stats.memory.oom_kills or 0) >= 1
    assert (report.stats.memory.max_usage or 0) <= 48 * MiB


def test_it_closes_idempotently_and_removes_the_group_everywhere(session):
    program = Program("time.sleep(60)")
    watched = session(Limits())
    watched.attach(program.process.pid)
    program.go()
    first = watched.close()  # kills what still runs
    assert program.wait() == -9
    assert first.killed is Reason.CLOSE
    assert watched.close() is first


def _looks_at_once(session: Session) -> None:
    """Force the worst interleaving on `session`: whoever wakes its watcher waits until the
    watcher has looked at the session (and slept again, or stopped watching)."""
    waker, looked = session._wake, threading.Event()
    wait, wake, done = waker.wait, waker.set, session._keep_dead

    def waiting(timeout: float, pidfd: int | None = None) -> bool:
        looked.set()
        return wait(timeout, pidfd)

    def waking() -> None:
        looked.clear()
        wake()
        assert looked.wait(10), "the watcher did not look"

    def stopped() -> None:
        looked.set()
        done()

    waker.wait, waker.set, session._keep_dead = waiting, waking, stopped


@pytest.mark.parametrize("attached", [True, False], ids=["running", "waiting"])
def test_it_closes_without_waiting_out_its_watcher_s_poll(session, attached):
    # The watcher sleeps up to RUN_POLL_MAX between looks; close wakes it and joins it. Woken
    # before the session was marked closed, it found it open and slept a whole poll again.
    watched = session(Limits(time=30))
    if attached:
        program = Program("pass")
        watched.attach(program.process.pid)
        program.go()
        assert program.wait() == 0
    _looks_at_once(watched)
    start = time.monotonic()
    assert watched.close().state is State.CLOSED
    assert time.monotonic() - start < RUN_POLL_MAX / 2


def test_it_kills_a_session_at_its_deadline(session):
    program = Program("time.sleep(60)")
    watched = session(Limits(time=60))
    watched.set_deadline(time.monotonic() + 0.3)
    watched.attach(program.process.pid)
    program.go()
    assert program.wait() == -9
    report = watched.close()
    assert report.killed is Reason.DEADLINE
    assert 0.2 < (report.stats.time or 0) < 1.0


def test_it_lives_on_while_its_deadline_is_renewed(session):
    program = Program("time.sleep(1.0)")
    watched = session(Limits(time=60))
    watched.set_deadline(time.monotonic() + 0.4)
    watched.attach(program.process.pid)
    program.go()
    while True:  # the owner renewing its lease every 0.1 s until the program ends
        watched.set_deadline(time.monotonic() + 0.4)
        try:
            assert program.process.wait(timeout=0.1) == 0
            break
        except subprocess.TimeoutExpired:
            continue
    assert watched.close().killed is None


def test_it_kills_what_enters_a_session_killed_at_its_deadline(session):
    watched = session(Limits(time=60))
    watched.set_deadline(time.monotonic())
    wait_for(lambda: watched.report().killed, "the deadline to kill the session")
    late = subprocess.Popen(["sleep", "60"])
    watched.cgroup.attach(late.pid)  # `attach` refuses a killed session; the kernel does not
    assert late.wait(timeout=10) == -9
    assert watched.close().killed is Reason.DEADLINE


def test_it_applies_every_limit_at_its_largest_accepted_value(session):
    from kolejka.common.limits import MAX_CPUS, MAX_PIDS, MAX_SIZE

    program = Program("pass")
    watched = session(Limits(memory=MAX_SIZE, swap=MAX_SIZE, pids=MAX_PIDS, cpus=MAX_CPUS))
    watched.attach(program.process.pid)
    program.go()
    assert program.wait() == 0
    assert watched.close().killed is None


def test_it_leaves_no_group_when_the_kernel_refuses_a_limit(clean):
    from kolejka.observer.cgroups import CgroupError

    path = f"{clean.cgroup_base}/{secrets.token_hex(4)}"
    with pytest.raises(CgroupError, match=r"pids\.max"):
        Session(Hierarchy.discover().group(path), Limits(pids=2**31), container=False)
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{path}"))


def test_it_tells_a_process_sleeping_on_its_parent_s_socket_from_one_at_a_fifo(tmp_path):
    # runc's init reads its parent's messages on a unix socket, then waits on its exec fifo: a
    # starting container is looked at less often in the first wait only.
    from kolejka.observer.sessions import _waits_for_parent

    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket; a, b = socket.socketpair(); print(flush=True); a.recv(1)",
        ],
        stdout=subprocess.PIPE,
    )
    opener = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'w')"])
    try:
        assert reader.stdout is not None and reader.stdout.readline() == b"\n"
        wait_for(lambda: _waits_for_parent(reader.pid), "the reader to sleep on its socket")
        wait_for(lambda: _wchan(opener.pid) not in ("", "0"), "the opener to sleep on the fifo")
        assert not _waits_for_parent(opener.pid)
    finally:
        reader.kill()
        opener.kill()
        reader.wait()
        opener.wait()
    assert not _waits_for_parent(reader.pid)  # no such process: looked at closely


def _wchan(pid: int) -> str:
    return Path(f"/proc/{pid}/wchan").read_text()
