"""The observer daemon, run for real: its protocol, its secrets, its sockets, and floods."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kolejka.common import Limits
from kolejka.observer.cgroups import GroupLimits, Hierarchy
from kolejka.observer.client import ObserverClient, ObserverError
from kolejka.observer.sessions import Reason, State

from ..worker.helpers import start_observer, wait_for


@pytest.fixture
def client(observer: Path) -> ObserverClient:
    return ObserverClient(str(observer), timeout=10)


def raw(path: Path, data: bytes) -> tuple[int, dict]:
    """Send `data` as is; the status and JSON body of the answer."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def attaching_program(observer: Path, session_id: str, secret: str, work: str):
    """A process that attaches itself to a session through the main socket, then does `work`."""
    code = (
        "import sys, time\n"
        "from kolejka.observer.client import ObserverClient, RemoteSession\n"
        f"client = ObserverClient({str(observer)!r})\n"
        f"RemoteSession(client, {{'id': {session_id!r}, 'secret': {secret!r}, "
        "'cgroup': ''}).attach()\n"
        "print('attached', flush=True)\n"
        f"{work}\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_it_says_what_it_is(client):
    assert client.info() | {"version": "-"} == {
        "service": "kolejka-observer",
        "version": "-",
        "cgroup": 1,
    }


def test_it_accounts_a_process_that_attaches_itself(client, observer):
    session = client.open(Limits(cpu_time=0.3, time=30))
    assert session.cgroup_parent.startswith("/kolejka-test-")
    program = attaching_program(observer, session.id, session.secret, "while True: pass")
    assert program.stdout is not None and program.stdout.readline() == "attached\n"
    assert program.wait(timeout=60) == -9
    report = session.close()
    assert (report.state, report.killed) == (State.CLOSED, Reason.CPU_TIME)
    assert (report.stats.cpu.usage or 0) >= 0.3
    assert session.close() is report
    again = client.request("POST", f"/sessions/{session.id}/close", {}, secret=session.secret)
    assert again["killed"] == "cpu_time"  # closing again answers the same


def test_it_answers_a_wrong_secret_like_an_unknown_session(client):
    session = client.open(Limits())
    answers = []
    for target, secret in ((session.id, "wrong"), ("0123456789abcdef", session.secret)):
        for method, verb in (("GET", ""), ("POST", "/kill"), ("POST", "/close")):
            with pytest.raises(ObserverError) as error:
                client.request(method, f"/sessions/{target}{verb}", {}, secret=secret)
            answers.append((error.value.status, str(error.value)))
    assert set(answers) == {(404, "observer: no such session")}
    assert session.report().state is State.WAITING
    session.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (b'{"limits": {"memroy": "1G"}}', 400, "limits.memroy: unknown limit"),
        (b'{"limits": {"network": true}}', 400, "a session enforces only"),
        (b'{"limits": {}, "cpuset": "all"}', 400, "cpuset must be a list"),
        (b'{"colour": "blue"}', 400, "unknown field 'colour'"),
        (b"not json", 400, "the body is not JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
    ],
)
def test_it_refuses_bad_requests_saying_why(observer, request_bytes, status, message):
    head = f"POST /sessions HTTP/1.0\r\nContent-Length: {len(request_bytes)}\r\n\r\n"
    answer = raw(observer, head.encode() + request_bytes)
    assert answer[0] == status
    assert message in answer[1]["error"]


def test_it_refuses_a_large_body_before_reading_it(observer):
    answer = raw(observer, b"POST /sessions HTTP/1.0\r\nContent-Length: 70000\r\n\r\n")
    assert answer == (413, {"error": "a request body may have at most 65536 bytes"})


def test_it_answers_unknown_paths_and_methods(observer):
    assert raw(observer, b"GET /nothing HTTP/1.0\r\n\r\n")[0] == 404
    assert raw(observer, b"GET /sessions/abc/kill HTTP/1.0\r\n\r\n")[0] == 405
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(observer))
        conn.sendall(b"DELETE / HTTP/1.0\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.0 501")


def test_it_keeps_its_main_socket_private(observer):
    mode = observer.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_it_serves_a_session_socket_only_to_the_session_s_processes(client):
    session = client.open(Limits(), socket_owner=os.getuid())
    assert session.socket is not None
    path = Path(session.socket)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ObserverError, match="only the processes of its session") as error:
        ObserverClient(str(path)).info()
    assert error.value.status == 403
    session.close()
    assert not path.exists()


def test_it_survives_a_flood_of_connections_and_garbage(client, observer):
    idle = []
    for _ in range(400):  # more than it serves at once
        conn = socket.socket(socket.AF_UNIX)
        try:
            conn.connect(str(observer))
        except OSError:
            conn.close()
            continue
        idle.append(conn)
    garbage = [
        os.urandom(4096),
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 100000 + b"\r\n\r\n",
        b"POST /sessions HTTP/1.0\r\nContent-Length: -5\r\n\r\n",
        b"POST /sessions HTTP/1.0\r\nContent-Length: 100\r\n\r\n{",
        b"\x00\xff" * 1000,
        b"GET /" + b"%" * 70000 + b" HTTP/1.0\r\n\r\n",
    ]
    for _ in range(20):
        for data in garbage:
            with socket.socket(socket.AF_UNIX) as conn:
                try:
                    conn.connect(str(observer))
                    conn.sendall(data)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    for conn in idle:
        conn.close()

    def answers() -> bool:
        try:
            return client.info()["service"] == "kolejka-observer"
        except ObserverError:
            return False

    wait_for(answers, "the observer to answer after the flood", timeout=20)
    session = client.open(Limits(time=5))
    assert session.close().state is State.CLOSED


def test_it_sweeps_groups_a_dead_observer_left(clean, tmp_path):
    base = f"{clean.cgroup_base}-sweep"
    hierarchy = Hierarchy.discover()
    group = hierarchy.group(f"{base}/deadbeef")
    group.create(GroupLimits())
    orphan = subprocess.Popen(["sleep", "60"])
    group.attach(orphan.pid)
    with start_observer(tmp_path / "observer.sock", base):
        assert orphan.wait(timeout=10) == -9
        assert not list(Path("/sys/fs/cgroup").glob(f"*/{base}/deadbeef"))


def test_it_kills_what_runs_and_removes_everything_on_sigterm(clean, tmp_path):
    path = tmp_path / "observer.sock"
    base = f"{clean.cgroup_base}-stop"
    with start_observer(path, base) as daemon:
        session = ObserverClient(str(path)).open(Limits(), socket_owner=0)
        program = attaching_program(path, session.id, session.secret, "time.sleep(60)")
        assert program.stdout is not None and program.stdout.readline() == "attached\n"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert program.wait(timeout=10) == -9
    assert not path.exists()
    assert not Path(str(session.socket)).exists()
    assert not [p for p in Path("/sys/fs/cgroup").glob(f"*/{base}/*") if p.is_dir()]


def test_it_refuses_to_start_twice_on_one_socket(observer, clean):
    command = [sys.executable, "-m", "kolejka.observer.cli", "--socket", str(observer)]
    second = subprocess.run(
        [*command, "--cgroup-base", f"{clean.cgroup_base}-twice"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert "another observer is serving" in second.stderr
    assert ObserverClient(str(observer)).info()["service"] == "kolejka-observer"


def test_it_kills_a_session_whose_deadline_its_owner_let_pass(client, observer):
    session = client.open(Limits(time=60), deadline=time.monotonic() + 30)
    program = attaching_program(observer, session.id, session.secret, "time.sleep(60)")
    assert program.stdout is not None and program.stdout.readline() == "attached\n"
    session.set_deadline(time.monotonic() + 0.3)  # renewed once, shorter, then never again
    assert program.wait(timeout=10) == -9
    assert session.close().killed is Reason.DEADLINE


def test_it_lets_only_the_main_socket_set_a_deadline(client, observer):
    session = client.open(Limits(time=60), socket_owner=os.getuid())
    inside = ObserverClient(str(session.socket))
    with pytest.raises(ObserverError) as refused:
        inside.request(
            "POST", f"/sessions/{session.id}/deadline", {"deadline": "1H"}, session.secret
        )
    assert refused.value.status in (403, 404)
    with pytest.raises(ObserverError, match="deadline"):
        client.request("POST", "/sessions", {"deadline": "soon"})
    assert session.close().killed is None


def test_it_closes_a_session_whose_owner_was_killed(observer):
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys\n"
            "from kolejka.common import Limits\n"
            "from kolejka.observer.client import ObserverClient\n"
            f"session = ObserverClient({str(observer)!r}).open(Limits())\n"
            "child = subprocess.Popen(['sleep', '60'])\n"
            "from kolejka.observer.cgroups import Hierarchy\n"
            "print(session.cgroup_parent, child.pid, flush=True)\n"
            "Hierarchy.discover().group(session.cgroup_parent).attach(child.pid)\n"
            "print('attached', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    group, child = owner.stdout.readline().split()
    assert owner.stdout.readline() == "attached\n"
    owner.kill()  # a SIGKILLed worker: nobody closes its session
    owner.wait()
    wait_for(lambda: not alive(int(child)), "the session's process to be killed")
    wait_for(
        lambda: not [p for p in Path("/sys/fs/cgroup").glob(f"*{group}") if p.is_dir()],
        "the session's group to go from every hierarchy",
    )


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_it_removes_its_base_group_when_it_exits(clean, tmp_path):
    path = tmp_path / "observer.sock"
    base = f"{clean.cgroup_base}-exit"
    with start_observer(path, base):
        ObserverClient(str(path)).open(Limits()).close()
        assert list(Path("/sys/fs/cgroup").glob(f"*/{base}"))
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{base}"))
