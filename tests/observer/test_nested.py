"""Nested sessions, from inside a task's container: a judge runs a solution in a sub-session with
tighter limits, and a task can neither see nor touch any session but its own."""

from __future__ import annotations

import json

from kolejka.common import Limits, Status
from kolejka.observer.client import ObserverClient
from kolejka.observer.sessions import State

from ..worker.helpers import DEBIAN, Runner

# What a judge needs, with python3's standard library only (the image has no kolejka).
PROTOCOL = r"""
import http.client, json, os, socket, sys

PATH = os.environ["KOLEJKA_OBSERVER"]


class Connection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(PATH)


def call(method, target, body=None, secret=None):
    connection = Connection("localhost", timeout=10)
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["Authorization"] = "Bearer " + secret
    data = json.dumps(body) if body is not None else None
    connection.request(method, target, data, headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")
"""

JUDGE = (
    PROTOCOL
    + r"""
status, sub = call("POST", "/sessions", {"limits": {"cpu_time": "300ms", "memory": "64M"}})
assert status == 201, sub
child = os.fork()
if child == 0:
    status, answer = call("POST", "/sessions/%s/attach" % sub["id"], {}, sub["secret"])
    if status != 200:
        os._exit(100)
    os.execvp("sh", ["sh", "-c", "while :; do :; done"])
_, wait_status = os.waitpid(child, 0)
status, report = call("POST", "/sessions/%s/close" % sub["id"], {}, sub["secret"])
print(json.dumps({"signal": os.WTERMSIG(wait_status), "close": status, "report": report}))
"""
)

INTRUDER = (
    PROTOCOL
    + r"""
other, secret = os.environ["OTHER_ID"], os.environ["OTHER_SECRET"]
tries = {
    "read": call("GET", "/sessions/" + other, secret=secret)[0],
    "attach": call("POST", "/sessions/%s/attach" % other, {}, secret)[0],
    "kill": call("POST", "/sessions/%s/kill" % other, {}, secret)[0],
    "close": call("POST", "/sessions/%s/close" % other, {}, secret)[0],
    "nest": call("POST", "/sessions", {"parent": {"id": other, "secret": secret}})[0],
    "own socket": call("GET", "/")[0],
}
try:
    main = socket.socket(socket.AF_UNIX)
    main.connect(os.environ["MAIN_SOCKET"])
    tries["main socket"] = "connected"
except OSError as error:
    tries["main socket"] = type(error).__name__
flood = []
for _ in range(100):
    try:
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(PATH)
        conn.sendall(os.urandom(64))
        flood.append(conn)
    except OSError:
        pass
for conn in flood:
    conn.close()
print(json.dumps(tries))
"""
)


def test_it_lets_a_judge_run_a_solution_in_a_nested_session(clean, observer, tmp_path):
    run = Runner(tmp_path, clean.config(observer=str(observer)))
    outcome = run(
        {"judge.py": JUDGE},
        image=DEBIAN,
        args=["python3", "judge.py"],
        stdout="out.txt",
        stderr="err.txt",
        limits={"time": "60s", "memory": "256M"},
    )
    assert outcome.status is Status.OK, outcome.text("err.txt")
    answer = json.loads(outcome.text("out.txt"))
    assert answer["signal"] == 9 and answer["close"] == 200
    assert answer["report"]["killed"] == "cpu_time"
    assert answer["report"]["state"] == "closed"
    solution_cpu = float(answer["report"]["stats"]["cpu"]["usage"].rstrip("s"))
    assert solution_cpu >= 0.3
    # The judge's own session counts its nested session too.
    assert (outcome.result.stats.cpu.usage or 0) >= solution_cpu


def test_it_keeps_a_task_away_from_other_sessions(clean, observer, tmp_path):
    other = ObserverClient(str(observer)).open(Limits(time=600))
    run = Runner(tmp_path, clean.config(observer=str(observer)))
    outcome = run(
        {"intruder.py": INTRUDER},
        image=DEBIAN,
        args=["python3", "intruder.py"],
        environment={
            "OTHER_ID": other.id,
            "OTHER_SECRET": other.secret,
            "MAIN_SOCKET": str(observer),
        },
        stdout="out.txt",
        stderr="err.txt",
        limits={"time": "60s"},
    )
    assert outcome.status is Status.OK, outcome.text("err.txt")
    tries = json.loads(outcome.text("out.txt"))
    assert tries == {
        "read": 404,
        "attach": 404,
        "kill": 404,
        "close": 404,
        "nest": 404,
        "own socket": 200,
        "main socket": "FileNotFoundError",
    }
    report = other.report()
    assert (report.state, report.killed) == (State.WAITING, None)
    other.close()
