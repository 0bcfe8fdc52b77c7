"""Tasks the operator lets run as root (kolejka-judge's): root with only the capabilities user
switching and file ownership need, a writable root file system bounded by `storage`, and the
rest of the box as for any task."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kolejka.common import Limits, Status

from .helpers import DEBIAN, Runner

MiB = 2**20
# CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID: bits 0, 1, 3, 4, 5, 6, 7.
OWNERSHIP_CAPABILITIES = "00000000000000fb"


def root_runner(clean, tmp_path: Path) -> Runner:
    return Runner(tmp_path, clean.config(root_images=(DEBIAN,)))


def capabilities(text: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith("CapEff:")]
    return line.split()[1]


def test_it_lets_a_root_task_make_users_and_hand_them_files(clean, tmp_path):
    script = (
        "id -u; grep CapEff /proc/self/status; useradd -m -d /home/judged judged && "
        "echo secret > answer && chown judged: answer && chmod 600 answer && "
        "setpriv --reuid=judged --regid=judged --init-groups sh -c 'id -un; cat answer' && "
        "ls -ln answer | cut -d' ' -f3 && grep -c judged /etc/passwd"
    )
    outcome = root_runner(clean, tmp_path)(
        image=DEBIAN, args=["bash", "-c", script], stdout="out.txt"
    )
    assert outcome.status is Status.OK, (outcome.result.to_dict(), outcome.text("out.txt"))
    lines = outcome.text("out.txt").splitlines()
    assert lines[0] == "0" and capabilities(outcome.text("out.txt")) == OWNERSHIP_CAPABILITIES
    assert lines[2:] == ["judged", "secret", "1000", "1"]
    assert outcome.result.limits.root is True


def test_it_keeps_other_tasks_unprivileged(clean, tmp_path):
    outcome = root_runner(clean, tmp_path)(
        image=DEBIAN,
        args=["bash", "-c", "id -u; grep CapEff /proc/self/status; touch /etc/x || echo ro"],
        stdout="out.txt",
        limits={"root": False},
    )
    text = outcome.text("out.txt")
    assert text.splitlines()[0] == "65534" and capabilities(text) == "0000000000000000"
    assert text.splitlines()[-1] == "ro"


def test_it_bounds_what_a_root_task_writes_to_its_root(clean, tmp_path):
    run = root_runner(clean, tmp_path)
    outcome = run(
        image=DEBIAN,
        args=[
            "bash",
            "-c",
            "dd if=/dev/zero of=/big bs=1M count=200 2>&1 | grep -c 'No space'; ls -s /big",
        ],
        stdout="out.txt",
        limits={"storage": "64M", "memory": "512M"},
    )
    text = outcome.text("out.txt")
    assert outcome.status is Status.OK, text
    assert text.splitlines()[0] == "1", text  # dd was told the disk is full
    assert int(text.splitlines()[-1].split()[0]) <= 64 * 1024  # KiB written
    assert outcome.result.limits.storage == 64 * MiB
    run.assert_still_works()


def test_it_refuses_root_where_the_operator_does_not_allow_it(clean, tmp_path):
    run = Runner(tmp_path, clean.config(maxima=Limits(root=False)))
    outcome = run(image=DEBIAN, args=["id", "-u"], stdout="out.txt", limits={"root": True})
    assert outcome.text("out.txt") == "65534\n" and outcome.result.limits.root is False


def layer_of(container: str) -> Path:
    """The folder of `container`'s writable layer (docker's overlay2 driver)."""
    inspected = subprocess.run(
        ["docker", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(inspected.stdout.strip()).parent


def tmpfs_at(folder: Path) -> bool:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return any(line.split()[4] == str(folder) and " - tmpfs " in line for line in lines)


def test_it_sweeps_a_killed_workers_root_task_with_its_bounded_root(clean, tmp_path):
    from kolejka.worker import sweep

    from .helpers import containers_of_pid, make_task, process_exists, wait_for
    from .test_cli import worker

    task = make_task(tmp_path / "task", image=DEBIAN, args=["sleep", "876541"])
    process = worker(clean, task, tmp_path / "result", env={"KOLEJKA_WORKER_ROOT_IMAGES": DEBIAN})
    wait_for(lambda: process_exists("sleep 876541"), "the task to run")
    (container,) = containers_of_pid(process.pid)
    layer = layer_of(container)
    assert tmpfs_at(layer)  # the root task's writable layer is bounded
    process.kill()  # no chance to clean up
    process.communicate(timeout=30)
    removed = sweep(clean.config())
    assert sorted(item.split()[0] for item in removed) == ["cgroup", "container", "workspace"]
    assert not process_exists("sleep 876541") and not containers_of_pid(process.pid)
    assert not tmpfs_at(layer) and not layer.exists()  # docker unmounted and removed it
