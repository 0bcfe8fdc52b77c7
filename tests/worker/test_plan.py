"""What the worker asks docker for, checked without an engine: the hardened container document,
GPUs as device requests (there is no GPU here), storage only where supported, the cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kolejka.common import Limits, Status, Task
from kolejka.common.globs import glob_regex
from kolejka.worker import Placement, WorkerConfig
from kolejka.worker.container import Plan, container_config
from kolejka.worker.run import _cores, _gpus, _Platform, limits_in_force, start_verdict

TASK = Task.from_dict(
    {
        "image": "judge:1",
        "args": ["./run", "x y"],
        "environment": {"A": "1"},
        "stdin": "in",
        "files": {"in": "in"},
    }
)


def plan(**changes):
    fields = {
        "name": "kolejka-x",
        "user": "65534:65534",
        "task_folder": Path("/w/task"),
        "tmp_folder": Path("/w/tmp"),
        "cgroup_parent": "/kolejka/abc",
        "workspace": 2**30,
    }
    fields.update(changes)
    return Plan(**fields)


def test_it_asks_for_a_hardened_container():
    document = container_config(TASK, plan())
    host = document["HostConfig"]
    assert document["Cmd"] == ["./run", "x y"] and document["Entrypoint"] == [""]
    assert document["User"] == "65534:65534"
    assert document["Env"] == ["HOME=/var/lib/kolejka/task", "A=1"]
    assert document["WorkingDir"] == "/var/lib/kolejka/task"
    assert document["Healthcheck"] == {"Test": ["NONE"]}
    assert (document["OpenStdin"], document["StdinOnce"]) == (True, True)
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == []
    assert host["SecurityOpt"][0] == "no-new-privileges"
    assert host["SecurityOpt"][1].startswith("seccomp={") and len(host["SecurityOpt"]) == 2
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["LogConfig"]["Type"] == "none"
    assert host["CgroupParent"] == "/kolejka/abc"
    assert host["ShmSize"] == 64 * 2**20
    assert [(m["Source"], m["Target"]) for m in host["Mounts"]] == [
        ("/w/task", "/var/lib/kolejka/task"),
        ("/w/tmp", "/tmp"),
    ]
    assert "DeviceRequests" not in host and "StorageOpt" not in host


def test_it_passes_assigned_gpus_as_nvidia_device_requests():
    host = container_config(TASK, plan(gpus=(2, 3)))["HostConfig"]
    assert host["DeviceRequests"] == [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["2", "3"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]


def test_it_takes_the_gpus_the_foreman_assigned_or_the_offset():
    limits = Limits(gpus=2, gpus_offset=1)
    assert _gpus(limits, Placement(gpus=(4, 5, 6))) == (4, 5)
    assert _gpus(limits, None) == (1, 2)
    assert _gpus(Limits(gpus=0), Placement(gpus=(4,))) == ()
    with pytest.raises(_Platform, match="needs 2 GPUs; 1 were assigned"):
        _gpus(limits, Placement(gpus=(4,)))


def test_it_takes_the_cores_the_foreman_assigned_or_the_offset():
    assert _cores(Limits(cpus=1), Placement(cpus=(7,))) == (7,)
    assert _cores(Limits(cpus=1, cpus_offset=0), None) == (0,)
    allowed = tuple(sorted(os.sched_getaffinity(0)))
    assert _cores(Limits(cpus=64), None) == allowed  # all there are, as the original did
    assert _cores(Limits(cpus=1, cpus_offset=len(allowed)), None) == allowed[:1]  # wraps round


def test_it_keeps_a_given_storage_limit_and_bounds_the_root_of_root_tasks():
    task = Task.from_dict({"image": "a", "args": ["b"], "limits": {"storage": "2G"}})
    assert limits_in_force(task, WorkerConfig()).storage == 2 * 2**30
    unset = Task.from_dict({"image": "a", "args": ["b"]})
    assert limits_in_force(unset, WorkerConfig()).storage is None  # a read-only root
    rooted = WorkerConfig(maxima=Limits(root=True), defaults=Limits(root=True, storage=2**30))
    assert limits_in_force(unset, rooted).storage == 2**30
    host = container_config(task, plan(storage=2**30))["HostConfig"]
    assert host["StorageOpt"] == {"size": str(2**30)}


def test_it_gives_root_tasks_root_a_writable_root_and_only_the_ownership_capabilities():
    document = container_config(TASK, plan(user="0:0", root=True))
    host = document["HostConfig"]
    assert document["User"] == "0:0" and host["ReadonlyRootfs"] is False
    assert host["CapDrop"] == ["ALL"]
    ownership = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"]
    assert sorted(host["CapAdd"]) == ownership
    assert host["SecurityOpt"][0] == "no-new-privileges" and host["NetworkMode"] == "none"
    assert host["Privileged"] is False and "Devices" not in host


def test_it_runs_the_operators_root_images_as_root_unless_the_task_declines():
    config = WorkerConfig(root_images=("kolejka/judge:*",))
    judge = Task.from_dict({"image": "kolejka/judge:latest", "args": ["b"]})
    assert limits_in_force(judge, config).root is True
    declined = Task.from_dict({"image": "kolejka/judge:1", "args": ["b"], "limits": {"root": 0}})
    assert limits_in_force(declined, config).root is False
    other = Task.from_dict({"image": "kolejka/busybox:latest", "args": ["b"]})
    assert limits_in_force(other, config).root is False


def test_it_covers_image_volumes_with_empty_read_only_mounts():
    mounts = container_config(TASK, plan(image_volumes=("/data", "/tmp")))["HostConfig"]["Mounts"]
    assert mounts[-1] == {
        "Type": "tmpfs",
        "Target": "/data",
        "ReadOnly": True,
        "TmpfsOptions": {"SizeBytes": 4096},
    }
    assert len(mounts) == 3


def test_it_mounts_the_session_socket_and_says_where():
    document = container_config(TASK, plan(observer_socket="/run/kolejka/sessions/x.sock"))
    mounts = document["HostConfig"]["Mounts"][-2:]
    assert [(m["Source"], m["Target"]) for m in mounts] == [
        ("/run/kolejka/sessions/x.sock", "/run/kolejka/observer.sock"),
        ("/run/kolejka/sessions/x.sock", "/var/run/kolejka/observer/socket"),
    ]
    assert "KOLEJKA_OBSERVER=/run/kolejka/observer.sock" in document["Env"]


def test_it_takes_network_and_root_only_where_allowed():
    task = Task.from_dict({"image": "a", "args": ["b"], "limits": {"network": True, "root": True}})
    default = limits_in_force(task, WorkerConfig())
    assert (default.network, default.root) == (True, False)
    strict = limits_in_force(task, WorkerConfig(maxima=Limits(network=False, root=False)))
    assert (strict.network, strict.root) == (False, False)


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.txt", ["a.txt", ".h.txt"], ["d/a.txt", "a.txt.x"]),
        ("out/**/*.txt", ["out/a.txt", "out/x/y/a.txt"], ["a.txt", "outx/a.txt", "out/a.log"]),
        ("out/**", ["out/a", "out/x/y"], ["out", "o/a"]),
        ("f?le[0-9].[!c]", ["file1.h", "fale9.x"], ["file1.c", "file12.h", "f/le1.h"]),
    ],
)
def test_it_matches_collect_globs_within_folders(pattern, matches, misses):
    regex = glob_regex(pattern)
    assert all(regex.fullmatch(name) for name in matches)
    assert not any(regex.fullmatch(name) for name in misses)


# What docker 20-28 answers when a container cannot start, recorded.
RUNC = "failed to create task for container: OCI runtime create failed: runc create failed: "
APPARMOR = (
    "AppArmor enabled on system but the docker-default profile could not be loaded: running "
    "`apparmor_parser apparmor_parser --version` failed with output: \nerror: exec: "
    '"apparmor_parser": executable file not found in $PATH'
)


@pytest.mark.parametrize(
    ("program", "error", "verdict"),
    [
        ("nope", RUNC + 'exec: "nope": executable file not found in $PATH: unknown',
         (Status.RUNTIME_ERROR, 127)),
        ("/bin/x", RUNC + 'exec: "/bin/x": stat /bin/x: no such file or directory: unknown',
         (Status.RUNTIME_ERROR, 127)),
        ("./run", RUNC + 'exec: "./run": permission denied: unknown', (Status.RUNTIME_ERROR, 126)),
        ("sh", APPARMOR, (Status.SYSTEM_ERROR, None)),
        ("apparmor", APPARMOR, (Status.SYSTEM_ERROR, None)),
        ("sh", RUNC + "unable to apply cgroup configuration: no such file or directory",
         (Status.SYSTEM_ERROR, None)),
        ("sh", RUNC + "container init was OOM-killed (memory limit too low?)",
         (Status.MEMORY_LIMIT, None)),
    ],
)  # fmt: skip
def test_a_start_error_is_the_tasks_fault_only_when_it_is_about_its_program(
    program, error, verdict
):
    assert start_verdict(program, error) == verdict
