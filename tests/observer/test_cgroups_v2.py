"""The cgroup v2 code against a fake unified tree (plain files in a temp dir): the host has v1.

The fake is as dumb as files are: it records what we write and returns what the test wrote as
the kernel's counters. Where the kernel acts (freezing), a thread plays its part.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kolejka.common import Limits
from kolejka.observer import cgroup_v2
from kolejka.observer.cgroups import CgroupError, GroupLimits, Hierarchy, cpu_list
from kolejka.observer.sessions import Reason, Session

MiB = 2**20


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


@pytest.fixture
def rmdir_like_cgroupfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """On cgroupfs a group's files go with its directory; in the fake they are real files."""
    monkeypatch.setattr(cgroup_v2, "remove_tree", lambda folder, deadline: shutil.rmtree(folder))


def write(folder: Path, files: dict[str, str]) -> None:
    """Make group `folder` of a fake tree (with the file the kernel gives every group) holding
    `files`."""
    root = next(level for level in folder.parents if (level / "cgroup.controllers").exists())
    for level in [*reversed(folder.relative_to(root).parents), folder.relative_to(root)]:
        group = root / level
        group.mkdir(exist_ok=True)
        if not (group / "cgroup.subtree_control").exists():
            (group / "cgroup.subtree_control").write_text("")
    for name, text in files.items():
        (folder / name).write_text(text)


def test_it_finds_the_unified_tree_in_mountinfo(tree, tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        f"35 24 0:30 / {tree} rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
    )
    hierarchy = Hierarchy.discover(mountinfo)
    assert (hierarchy.version, hierarchy.mounts) == (2, {"": tree})


def test_it_finds_v1_controllers_and_the_other_hierarchies(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    lines = [
        "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
        "31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
        "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        "33 25 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
        "34 25 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
        "35 25 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset",
        "36 25 0:32 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer",
        "37 25 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices",
    ]
    mountinfo.write_text("\n".join(lines) + "\n")
    hierarchy = Hierarchy.discover(mountinfo)
    assert hierarchy.version == 1
    assert (
        hierarchy.mounts["cpu"] == hierarchy.mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    )
    assert set(hierarchy.extra) == {
        Path("/sys/fs/cgroup/systemd"),
        Path("/sys/fs/cgroup/devices"),
        Path("/sys/fs/cgroup/unified"),
    }
    mountinfo.write_text("\n".join(line for line in lines if "freezer" not in line) + "\n")
    with pytest.raises(CgroupError, match="freezer"):
        Hierarchy.discover(mountinfo)


def test_it_names_the_controllers_a_v2_tree_lacks(tree):
    (tree / "cgroup.controllers").write_text("cpu memory\n")
    with pytest.raises(CgroupError, match="cpuset, pids"):
        Hierarchy.v2(tree)


def test_it_makes_a_group_with_its_limits(tree):
    write(tree / "kolejka" / "abc", {"memory.swap.max": "max"})
    (tree / "kolejka" / "cgroup.subtree_control").write_text("cpu\n")
    (tree / "cgroup.subtree_control").write_text("")
    group = Hierarchy.v2(tree).group("kolejka/abc")
    group.create(GroupLimits(memory=64 * MiB, swap=0, pids=16, cpus=1.5, cpuset=(0, 1, 3)))
    folder = tree / "kolejka" / "abc"
    assert (tree / "cgroup.subtree_control").read_text() == "+cpu +cpuset +memory +pids"
    assert (tree / "kolejka" / "cgroup.subtree_control").read_text() == "+cpuset +memory +pids"
    assert (folder / "cgroup.subtree_control").read_text() == "+cpu +cpuset +memory +pids"
    assert (folder / "cpu.max").read_text() == "150000 100000"
    assert (folder / "memory.max").read_text() == str(64 * MiB)
    assert (folder / "memory.swap.max").read_text() == "0"
    assert (folder / "pids.max").read_text() == "16"
    assert (folder / "cpuset.cpus").read_text() == "0-1,3"
    group.set_limits(GroupLimits())
    assert [(folder / name).read_text() for name in ("cpu.max", "memory.max", "pids.max")] == [
        "max 100000",
        "max",
        "max",
    ]


def test_it_reads_the_counters_preferring_the_group_s_own_events(tree):
    folder = tree / "kolejka" / "abc"
    write(
        folder,
        {
            "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 0\n",
            "memory.current": "1048576\n",
            "memory.peak": "8388608\n",
            "memory.events": "low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\n",
            "memory.events.local": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\n",
            "pids.current": "3\n",
            "pids.peak": "12\n",
            "pids.events": "max 7\n",
        },
    )
    counters = Hierarchy.v2(tree).group("kolejka/abc").counters()
    assert (counters.cpu_usage, counters.cpu_user, counters.cpu_system) == (1.5, 1.0, 0.5)
    assert (counters.memory_current, counters.memory_peak) == (MiB, 8 * MiB)
    assert (counters.memory_failures, counters.memory_ooms) == (4, 1)
    assert (counters.pids_current, counters.pids_peak, counters.pids_failures) == (3, 12, 7)


def test_it_keeps_the_peak_where_the_kernel_cannot_reset_it(tree):
    write(tree / "g", {"memory.peak": "4096\n"})
    group = Hierarchy.v2(tree).group("g")
    assert group.reset_memory_peak() is False  # a plain file does not answer like the kernel


def test_it_lists_the_processes_of_nested_groups(tree):
    write(tree / "g", {"cgroup.procs": "10\n11\n"})
    write(tree / "g" / "runtime", {"cgroup.procs": "12\n"})
    write(tree / "g" / "nested" / "deeper", {"cgroup.procs": "13\n"})
    assert sorted(Hierarchy.v2(tree).group("g").processes()) == [10, 11, 12, 13]


def test_it_kills_through_cgroup_kill(tree):
    write(tree / "g", {"cgroup.kill": "", "cgroup.procs": "1\n"})
    Hierarchy.v2(tree).group("g").kill()
    assert (tree / "g" / "cgroup.kill").read_text() == "1"


def test_it_freezes_kills_and_thaws_without_cgroup_kill(tree):
    sleeper = subprocess.Popen(["sleep", "60"])
    folder = tree / "g"
    write(folder, {"cgroup.procs": f"{sleeper.pid}\n", "cgroup.freeze": "0", "cgroup.events": ""})

    def kernel() -> None:  # freezes the group when asked
        deadline = time.monotonic() + 10
        while (folder / "cgroup.freeze").read_text() != "1" and time.monotonic() < deadline:
            time.sleep(0.001)
        (folder / "cgroup.events").write_text("populated 1\nfrozen 1\n")

    thread = threading.Thread(target=kernel)
    thread.start()
    Hierarchy.v2(tree).group("g").kill()
    thread.join()
    assert sleeper.wait(timeout=10) == -9
    assert (folder / "cgroup.freeze").read_text() == "0"


def test_it_enforces_a_session_s_cpu_time_on_v2(tree, rmdir_like_cgroupfs):
    sleeper = subprocess.Popen(["sleep", "60"])
    counters = {
        "cpu.stat": "usage_usec 200000\nuser_usec 100000\nsystem_usec 100000\n",
        "memory.current": "0\n",
        "memory.peak": "0\n",
        "memory.events": "max 0\noom 0\n",
        "pids.current": "1\n",
        "pids.events": "max 0\n",
        "cgroup.kill": "",
    }
    write(tree / "kolejka" / "s1", counters)
    session = Session(
        Hierarchy.v2(tree).group("kolejka/s1"),
        Limits(cpu_time=0.5),
        container=False,
        session_id="s1",
    )
    session.attach(sleeper.pid)
    assert (tree / "kolejka" / "s1" / "cgroup.procs").read_text() == str(sleeper.pid)
    # The kernel counts 0.6 s more: past the limit of 0.5 s from the attach.
    (tree / "kolejka" / "s1" / "cpu.stat").write_text(
        "usage_usec 800000\nuser_usec 500000\nsystem_usec 300000\n"
    )
    deadline = time.monotonic() + 10
    while session.report().killed is None and time.monotonic() < deadline:
        time.sleep(0.01)
    report = session.report()
    assert report.killed is Reason.CPU_TIME
    assert report.stats.cpu.usage == pytest.approx(0.6)
    assert report.stats.cpu.user == pytest.approx(0.4)
    assert (tree / "kolejka" / "s1" / "cgroup.kill").read_text() == "1"
    (tree / "kolejka" / "s1" / "cgroup.procs").write_text("")  # the kernel emptied it
    assert session.close().killed is Reason.CPU_TIME
    assert not (tree / "kolejka" / "s1").exists()
    sleeper.kill()
    sleeper.wait()


def test_it_writes_core_lists_as_the_kernel_does():
    assert cpu_list((0,)) == "0"
    assert cpu_list((3, 0, 1, 2, 7, 9, 10)) == "0-3,7,9-10"
