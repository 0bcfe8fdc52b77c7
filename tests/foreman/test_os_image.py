"""The foreman OS image, built from images/foreman-os and booted in QEMU: it configures itself
from the kernel command line, registers with a server on the host, loads the task image from the
server's tarball (the VM has no registry), and runs tasks under cgroup v2 on a real kernel."""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kolejka.client import TaskState
from kolejka.common import Status, Task

from ..client.live import LiveServer, live_server, wait_for

ROOT = Path(__file__).parents[2]
BUSYBOX = "kolejka/busybox:latest"
# Building the Debian base (once per recipe) takes minutes, and the VM is emulated.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def os_image(tmp_path_factory) -> Path:
    """The image, built (or found up to date) in the build cache."""
    out = Path(os.environ.get("KOLEJKA_CACHE", "/var/cache/kolejka")) / "foreman-os"
    env = {**os.environ, "KOLEJKA_VENV": str(Path(sys.executable).parent.parent)}
    subprocess.run([str(ROOT / "images/foreman-os/build"), str(out)], env=env, check=True)
    return out


@pytest.fixture
def server(tmp_path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server") as running:
        yield running


def boot(image: Path, server: LiveServer, tag: str, console: Path) -> subprocess.Popen[bytes]:
    """The image under QEMU with user networking: the host's 127.0.0.1 is 10.0.2.2 inside."""
    parameters = [
        "root=/dev/vda rw console=ttyS0",
        f"kolejka.server=http://10.0.2.2:{server.port}",
        f"kolejka.token={server.tokens['fred']}",
        f"kolejka.name=vm-{tag} kolejka.tags={tag} kolejka.claim_wait=5s",
    ]
    # Software emulation: this host's KVM does not run nested guests reliably.
    command = [
        *("qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"),
        *("-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img")),
        *("-append", " ".join(parameters)),
        *("-drive", f"file={image / 'rootfs.img'},format=raw,if=virtio,snapshot=on"),
        *("-nic", "user,model=virtio-net-pci", "-display", "none", "-no-reboot"),
        *("-serial", f"file:{console}"),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def test_it_boots_into_a_foreman_that_runs_tasks_under_cgroup_v2(os_image, server, tmp_path):
    tag = f"os-{secrets.token_hex(4)}"
    admin = server.client("ada")
    tarball = tmp_path / "busybox.tar"
    with open(tarball, "wb") as handle:
        for chunk in docker.from_env().images.get(BUSYBOX).save(named=BUSYBOX):
            handle.write(chunk)
    admin.put_image(BUSYBOX, admin.put_blob(tarball).reference)
    console = tmp_path / "console.log"
    vm = boot(os_image, server, tag, console)
    try:
        alice = server.client("alice")
        tasks = {
            "cgroups": {"args": ["cat", "/proc/self/cgroup"], "stdout": "out.txt"},
            "memory": {
                "args": ["kolejka-probe", "mem", "256"],
                "limits": {"memory": "64M", "swap": 0},
            },
            "cpu_time": {"args": ["sh", "-c", "while :; do :; done"], "limits": {"cpu_time": "1s"}},
        }
        keys = {}
        for name, fields in tasks.items():
            limits = {"time": "60s", **fields.pop("limits", {})}
            document = {"image": BUSYBOX, "requires": [tag], "limits": limits, **fields}
            keys[name] = alice.submit(Task.from_dict(document)).key
        for name, key in keys.items():
            info = wait_for(
                lambda key=key: (lambda i: i if i.state.final else None)(alice.task(key)),
                f"task {name} to end in the VM (console: {console})",
                deadline=900,
            )
            assert info.state is TaskState.DONE, (
                f"{name}: {info.error}\n{console.read_text()[-3000:]}"
            )
        results = {name: alice.result(key) for name, key in keys.items()}
        node = server.client("fred").nodes()
        assert [n.name for n in node] == [f"vm-{tag}"]
        assert any(t.startswith("kernel:6.1.") for t in node[0].tags), node[0].tags
        cgroups = results["cgroups"]
        assert cgroups.status is Status.OK, cgroups.error
        assert cgroups.accounting == "observer"
        alice.fetch_result(keys["cgroups"], tmp_path / "cgroups")
        lines = (tmp_path / "cgroups" / "out.txt").read_text().split()
        assert lines and all(line.startswith("0::") for line in lines), lines  # v2 alone
        assert results["memory"].status is Status.MEMORY_LIMIT, results["memory"].error
        assert (results["memory"].stats.memory.max_usage or 0) <= 64 * 2**20
        assert results["cpu_time"].status is Status.CPU_TIME_LIMIT, results["cpu_time"].error
        assert 1.0 <= (results["cpu_time"].stats.cpu.usage or 0) < 1.5
    finally:
        vm.kill()
        vm.wait()
