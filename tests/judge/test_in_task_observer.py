"""The original kolejka's in-task observer protocol, spoken from inside real task containers by
the original's own client code (``kolejka.observer.runner``, what kolejka-judge calls) and by
hand: the original's request and reply shapes on our nested sessions, figures as exact as ours,
and a task kept to its own limits and its own sessions."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from kolejka.common import Status
from kolejka.worker import WorkerConfig, execute

from ..worker.helpers import BUSYBOX, wait_for
from .original import JUDGE_IMAGE, judge_library

MiB = 2**20

# The original's client, as kolejka-judge uses it (kolejka/judge/systems/observer.py).
RUNNER = """
import json, sys
sys.path.insert(0, "kolejka-judge")
import kolejka.observer.runner as runner
from kolejka.common import KolejkaLimits

def run(args, **limits):
    done = runner.run(args, limits=KolejkaLimits(**limits))
    return {"returncode": done.returncode, "stats": done.stats.dump()}
"""

# By hand, on the socket at the original's path.
RAW = """
import http.client, json, os, socket, sys

class Connection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/var/run/kolejka/observer/socket")

def post(verb, **body):
    connection = Connection("kolejka-observer", timeout=10)
    data = json.dumps(body)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    connection.request("POST", "/" + verb, data, headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())
"""


class InTask:
    """Python programs run in root tasks of the judge image, with the original's client library
    (``kolejka-judge``) and kolejka-probe beside them."""

    def __init__(self, config: WorkerConfig, tmp_path: Path) -> None:
        self.config = config
        self.tmp = tmp_path
        self.count = 0
        judge_library(tmp_path)
        with open(tmp_path / "kolejka-probe", "wb") as out:
            command = ["docker", "run", "--rm", "--network", "none", BUSYBOX]
            subprocess.run([*command, "cat", "/bin/kolejka-probe"], stdout=out, check=True)

    def folder(self, program: str, *args: str, limits: dict | None = None) -> Path:
        self.count += 1
        task = self.tmp / f"task{self.count}"
        task.mkdir()
        (task / "program.py").write_text(program)
        files = ("program.py", "kolejka-judge", "kolejka-probe")
        for name in files[1:]:
            shutil.copy(self.tmp / name, task / name)
        document = {
            "image": JUDGE_IMAGE,
            "args": ["python3", "program.py", *args],
            "files": {name: name for name in files},
            "stdout": "out.json",
            "stderr": "err.txt",
            "limits": {"memory": "256M", "pids": 64, "time": "60s", **(limits or {})},
        }
        (task / "kolejka_task.json").write_text(json.dumps(document))
        return task

    def run(
        self, program: str, *args: str, limits: dict | None = None, status: Status = Status.OK
    ) -> dict:
        """The JSON the program printed last; its task must end with `status`."""
        task = self.folder(program, *args, limits=limits)
        result = execute(task, task.with_name(task.name + "-result"), config=self.config)
        out = (task.with_name(task.name + "-result") / "out.json").read_text()
        err = (task.with_name(task.name + "-result") / "err.txt").read_text()
        assert result.status is status, (result.to_dict(), out, err)
        return json.loads(out.splitlines()[-1])


@pytest.fixture
def in_task(clean, observer, judge_image, tmp_path) -> InTask:
    config = clean.config(observer=str(observer), root_images=("kolejka/judge:*",))
    return InTask(config, tmp_path)


def seconds(text: str) -> float:
    assert text.endswith("s"), text
    return float(text[:-1])


def size(text: str) -> int:
    assert text.endswith("b"), text
    return int(text[:-1])


def test_it_speaks_the_originals_protocol_in_the_originals_shapes(in_task):
    out = in_task.run(
        RAW
        + """
out = {"root": post("")}
status, opened = post("open")
session = {"session_id": opened["session_id"], "secret": opened["secret"]}
out["open"] = [status, sorted(opened), opened["status"]]
out["limits"] = post(
    "limits",
    limits={"cpus": 1, "memory": "67108864b", "swap": "0b", "pids": 8, "time": "5.0s",
            "cpus_offset": 0, "perf_instructions": 10},
    **session,
)
child = os.fork()
if child == 0:  # as the original's starter: the open answer, status and all, then exec
    post("attach", **opened)
    os.execv("./kolejka-probe", ["./kolejka-probe", "cpu", "0.2"])
os.waitpid(child, 0)
out["stats"] = post("stats", **session)
out["close"] = post("close", **session)
out["close again"] = post("close", **session)
out["stats closed"] = post("stats", **session)
out["detach"] = post("detach", **session)
out["wrong secret"] = post("stats", session_id=opened["session_id"], secret="guess")
print(json.dumps(out))
"""
    )
    assert out["root"] == [200, {"sessions": 0, "status": "ok"}]
    assert out["open"] == [200, ["secret", "session_id", "status"], "ok"]
    assert out["limits"] == [200, {"status": "ok"}]
    status, stats = out["stats"]
    assert status == 200 and stats["status"] == "ok"
    assert set(stats) == {"cpu", "cpus", "memory", "pids", "perf", "time", "gpus", "status"}
    assert 0.2 <= seconds(stats["cpu"]["usage"]) < 0.22
    assert sum(seconds(cpu["usage"]) for cpu in stats["cpus"].values()) == pytest.approx(
        seconds(stats["cpu"]["usage"]), abs=1e-6
    )
    assert 0 < size(stats["memory"]["max_usage"]) < 8 * MiB
    assert stats["pids"]["max_usage"] >= 1 and seconds(stats["time"]) >= 0.2
    assert out["close"] == out["close again"] == [200, {"status": "ok"}]
    assert out["stats closed"][0] == 200 and out["stats closed"][1]["cpu"] == stats["cpu"]
    assert out["detach"][0] == 501 and out["detach"][1]["status"] == "error"
    assert out["wrong secret"][0] == 403


def test_it_gives_the_originals_client_figures_as_exact_as_ours(in_task):
    """What kolejka-judge reads (``stats.cpu.usage``, ``stats.memory.max_usage``) for programs
    whose use is known: a 1.000 s CPU loop, 100 MiB touched."""
    out = in_task.run(
        RUNNER
        + """
print(json.dumps({
    "cpu": run(["./kolejka-probe", "cpu", "1"], cpus=1, memory="128M", pids=8, time="10s"),
    "mem": run(["./kolejka-probe", "mem", "100"], cpus=1, memory="200M", pids=8, time="10s"),
}))
"""
    )
    assert out["cpu"]["returncode"] == out["mem"]["returncode"] == 0
    cpu = seconds(out["cpu"]["stats"]["cpu"]["usage"])
    memory = size(out["mem"]["stats"]["memory"]["max_usage"])
    print(f"in-task stats: cpu {cpu:.4f} s for 1.000 s; memory {memory / MiB:.2f} MiB for 100")
    assert abs(cpu - 1.0) <= 0.01
    assert abs(memory - 100 * MiB) <= 2 * MiB


def test_it_keeps_a_session_within_the_tasks_own_limits(in_task):
    """A session asking for more than the task has gets the task's: the task's 256M holds a
    solution that asked for 2G (the task as a whole hit its limit, so its verdict says so,
    while the program that opened the session lives on to report), and a session's own time
    limit stops a loop."""
    out = in_task.run(
        RUNNER
        + """
print(json.dumps({
    "memory": run(["./kolejka-probe", "mem", "400"], memory="2G", pids=8),
    "time": run(["./kolejka-probe", "cpu", "30"], memory="64M", time="1s"),
}))
""",
        status=Status.MEMORY_LIMIT,
    )
    memory, timed = out["memory"], out["time"]
    assert memory["returncode"] == -9, memory  # killed by the kernel at the task's 256M
    assert size(memory["stats"]["memory"]["max_usage"]) <= 256 * MiB
    assert timed["returncode"] == -9, timed
    assert 1.0 <= seconds(timed["stats"]["time"]) < 1.5


def test_it_lets_a_process_nest_only_inside_its_own_session(in_task):
    """A solution attached to a tight session cannot move to a looser one beside it, and a
    session it opens itself is nested in its own, under its own limits."""
    out = in_task.run(
        RAW
        + """
def session(answer):
    return {"session_id": answer["session_id"], "secret": answer["secret"]}

tight = session(post("open")[1])
post("limits", limits={"memory": "32M"}, **tight)
loose = session(post("open")[1])
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.close(read)
    report = {"attach tight": post("attach", **tight)[0]}
    report["attach loose"] = post("attach", **loose)
    own = session(post("open")[1])
    report["limits own"] = post("limits", limits={"memory": "1G"}, **own)[0]
    report["attach own"] = post("attach", **own)[0]
    os.write(write, json.dumps(report).encode())
    os.close(write)
    os.execv("./kolejka-probe", ["./kolejka-probe", "mem", "64"])
os.close(write)
report = json.loads(os.read(read, 65536))
_, status = os.waitpid(child, 0)
report["killed"] = os.WIFSIGNALED(status) and os.WTERMSIG(status)
report["tight stats"] = post("stats", **tight)[1]["memory"]
print(json.dumps(report))
"""
    )
    assert out["attach tight"] == 200
    assert out["attach loose"][0] == 403, out
    assert "nested in its own" in out["attach loose"][1]["error"]
    assert out["limits own"] == out["attach own"] == 200
    assert out["killed"] == 9  # its own session is inside the tight one: 32M still holds
    assert size(out["tight stats"]["max_usage"]) <= 32 * MiB


def test_it_never_shows_a_task_another_tasks_sessions(in_task, clean):
    """One task's session id and secret, given to another task, get it nothing: not while the
    first task runs, not after its session is closed."""
    holder = in_task.folder(
        RAW
        + """
import time
opened = post("open")[1]
with open("creds.tmp", "w") as creds:  # in its working folder, which the test can see
    json.dump({"session_id": opened["session_id"], "secret": opened["secret"]}, creds)
os.rename("creds.tmp", "creds.json")
time.sleep(120)
"""
    )
    cancel = threading.Event()
    held: dict = {}
    thread = threading.Thread(
        target=lambda: held.update(
            result=execute(
                holder, holder.with_name("holder-result"), config=in_task.config, cancel=cancel
            )
        )
    )
    thread.start()
    try:
        workspaces = clean.temp_dir.glob
        found = wait_for(lambda: list(workspaces("kolejka-task-*/task/creds.json")), "creds", 60)
        other = json.loads(found[0].read_text())
        probe = (
            RAW
            + """
session = json.loads(sys.argv[1])
verbs = ("stats", "limits", "attach", "kill", "close")
answers = {verb: post(verb, **session)[0] for verb in verbs}
connection = Connection("kolejka-observer", timeout=10)
bearer = {"Authorization": "Bearer " + session["secret"]}
connection.request("GET", "/sessions/" + session["session_id"], headers=bearer)
answers["ours"] = connection.getresponse().status
print(json.dumps(answers))
"""
        )
        answers = in_task.run(probe, json.dumps(other))
        assert answers == {
            "stats": 403,
            "limits": 403,
            "attach": 403,
            "kill": 403,
            "close": 403,
            "ours": 404,
        }
    finally:
        cancel.set()
        thread.join(timeout=120)
    assert held["result"].error == "cancelled"
    answers = in_task.run(probe, json.dumps(other))  # its session is closed now
    assert set(answers.values()) <= {403, 404}


def test_it_holds_a_task_to_the_caps_of_our_own_protocol(in_task):
    """At most 64 sessions nested in a task, and bodies of at most 64 KiB, as on our protocol."""
    out = in_task.run(
        RAW
        + """
codes = [post("open")[0] for _ in range(66)]
connection = Connection("kolejka-observer", timeout=10)
connection.request("POST", "/open", "x" * 70000, {"Content-Type": "application/json"})
print(json.dumps({"codes": codes, "large body": connection.getresponse().status}))
"""
    )
    assert out["codes"] == [200] * 64 + [429] * 2
    assert out["large body"] == 413
