"""kolejka's seccomp profile, from inside a real task: each call it takes away from docker's
default profile fails with EPERM (and succeeds, or fails otherwise, under docker's default, so
that the check can fail), docker's own denials still hold, and a grader's ordinary calls work."""

from __future__ import annotations

import json
import subprocess

import pytest

from kolejka.common import Status
from kolejka.worker.seccomp import DENIED

from .helpers import DEBIAN, LABEL, Runner

# x86_64 numbers, and arguments that make each call fail harmlessly if it is allowed.
CALLS = {
    "io_uring_setup": (425, 1, 0),
    "io_uring_enter": (426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": (427, -1, 0, 0, 0),
    "name_to_handle_at": (303, -100, 0, 0, 0, 0),
    "fanotify_mark": (301, -1, 0, 0, -100, 0),
    # docker's default already denies these; they must stay denied
    "unshare": (272, 0x10000000),  # CLONE_NEWUSER
    "keyctl": (250, 0, 0, 0, 0, 0),
    "bpf": (321, 0, 0, 0),
    "userfaultfd": (323, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    # ordinary calls, allowed
    "getpid": (39,),
    "sched_yield": (24,),
}
EPERM = 1
PROBE = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
calls = json.loads(sys.argv[1])
out = {}
for name, (number, *args) in calls.items():
    ctypes.set_errno(0)
    value = libc.syscall(number, *[ctypes.c_long(arg) for arg in args])
    out[name] = ctypes.get_errno() if value == -1 else "ok"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def errors(sandbox, tmp_path_factory) -> dict[str, object]:
    """What each call gave inside a kolejka task."""
    run = Runner(tmp_path_factory.mktemp("seccomp"), sandbox.config())
    outcome = run(
        image=DEBIAN,
        args=["python3", "-c", PROBE, json.dumps(CALLS)],
        stdout="out.json",
        limits={"time": "60s"},
    )
    assert outcome.status is Status.OK, outcome.result.to_dict()
    sandbox.assert_clean()
    return json.loads(outcome.text("out.json"))


@pytest.fixture(scope="module")
def docker_default(sandbox) -> dict[str, object]:
    """What each call gives under docker's own default profile."""
    done = subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "--user", "65534:65534"),
            *("--label", f"{LABEL}={sandbox.run_id}", DEBIAN),
            *("python3", "-c", PROBE, json.dumps(CALLS)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("call", DENIED)
def test_it_denies_a_call_docker_allows(errors, call):
    assert errors[call] == EPERM


# name_to_handle_at is left out: docker 20.10's default denies it too (later ones allow it).
@pytest.mark.parametrize(
    "call", ["io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_mark"]
)
def test_the_calls_fail_otherwise_under_dockers_default(docker_default, call):
    """So it is the profile, not the calls' arguments, that refuses them in a task."""
    assert docker_default[call] != EPERM


@pytest.mark.parametrize("call", ["unshare", "keyctl", "bpf", "userfaultfd", "mount"])
def test_it_keeps_dockers_own_denials(errors, call):
    assert errors[call] == EPERM


@pytest.mark.parametrize("call", ["getpid", "sched_yield"])
def test_it_allows_ordinary_calls(errors, call):
    assert errors[call] == "ok"
