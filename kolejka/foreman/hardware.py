"""What a node has: cores, memory, disk, GPUs, and the tags that describe them.

GPUs are read from ``nvidia-smi``; a node without the tool or its driver simply has no GPUs.
Everything here can be overridden by the operator's configuration; detection fills the rest.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from kolejka.common import Capacity, KolejkaError

NVIDIA_SMI_QUERY = "index,uuid,name,memory.total,pci.bus_id"
NVIDIA_SMI_USAGE = "index,utilization.gpu,memory.used,temperature.gpu"

Runner = Callable[[Sequence[str]], str]


@dataclass(frozen=True)
class Gpu:
    """One GPU as ``nvidia-smi`` reports it; `memory` in bytes."""

    index: int
    uuid: str
    name: str
    memory: int
    bus_id: str


@dataclass(frozen=True)
class GpuUsage:
    """A sample of one GPU's load: utilisation in %, memory used in bytes, temperature in °C."""

    index: int
    utilization: int
    memory_used: int
    temperature: int


class NvidiaSmiError(KolejkaError):
    """nvidia-smi is installed but failed; the GPUs cannot be used until its driver works."""


def run_nvidia_smi(args: Sequence[str]) -> str:
    """Run ``nvidia-smi`` with `args`; return its output, "" when it is not installed."""
    if shutil.which("nvidia-smi") is None:
        return ""
    done = subprocess.run(
        ["nvidia-smi", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        message = (done.stdout + done.stderr).strip().splitlines()
        raise NvidiaSmiError(f"nvidia-smi failed: {message[0] if message else done.returncode}")
    return done.stdout


def _csv_rows(text: str, columns: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != columns:
            raise NvidiaSmiError(f"unexpected nvidia-smi output line: {line!r}")
        rows.append(cells)
    return rows


def parse_gpus(text: str) -> list[Gpu]:
    """Parse ``nvidia-smi --query-gpu=<NVIDIA_SMI_QUERY> --format=csv,noheader,nounits``."""
    return [
        Gpu(int(index), uuid, name, int(float(memory_mib)) * 2**20, bus_id)
        for index, uuid, name, memory_mib, bus_id in _csv_rows(text, 5)
    ]


def parse_gpu_usage(text: str) -> list[GpuUsage]:
    """Parse ``nvidia-smi --query-gpu=<NVIDIA_SMI_USAGE> --format=csv,noheader,nounits``."""
    return [
        GpuUsage(int(index), int(utilization), int(float(used_mib)) * 2**20, int(temperature))
        for index, utilization, used_mib, temperature in _csv_rows(text, 4)
    ]


def detect_gpus(run: Runner = run_nvidia_smi) -> list[Gpu]:
    """The node's GPUs; [] without nvidia-smi. Raises `NvidiaSmiError` if it is broken."""
    return parse_gpus(run([f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"]))


def sample_gpu_usage(run: Runner = run_nvidia_smi) -> list[GpuUsage]:
    """One sample of every GPU's load."""
    return parse_gpu_usage(
        run([f"--query-gpu={NVIDIA_SMI_USAGE}", "--format=csv,noheader,nounits"])
    )


_CPU_NOISE = re.compile(
    r"\(r\)|\(tm\)|@.*$|\bcpu\b|\bprocessor\b|\b\d+-core\b|\bamd\b|\bintel\b", re.IGNORECASE
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def cpu_tags(cpuinfo: str) -> set[str]:
    """Tags for the CPU described by /proc/cpuinfo: ``cpu:amd``, ``cpu:epyc-7763``, ``cpus:2``."""
    vendors = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}
    tags, count = set(), 0
    for line in cpuinfo.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            count += 1
        elif key == "vendor_id" and value in vendors:
            tags.add(f"cpu:{vendors[value]}")
        elif key == "model name" and _slug(_CPU_NOISE.sub(" ", value)):
            tags.add(f"cpu:{_slug(_CPU_NOISE.sub(' ', value))}")
    if count:
        tags.add(f"cpus:{count}")
    return tags


def gpu_tags(gpus: Sequence[Gpu]) -> set[str]:
    """Tags for the GPUs: ``gpus:2``, ``gpu:a100-sxm4-40gb``, ``gpu:nvidia``."""
    tags = {f"gpus:{len(gpus)}"} if gpus else set()
    for gpu in gpus:
        words = gpu.name.split()
        if words and words[0].lower() == "nvidia":
            tags.add("gpu:nvidia")
            words = words[1:]
        tags.add(f"gpu:{_slug(' '.join(words))}")
    return tags


def system_tags() -> set[str]:
    """Tags for the machine: ``hostname:...``, ``kernel:...``, ``arch:...``."""
    uname = platform.uname()
    return {f"hostname:{uname.node}", f"kernel:{uname.release}", f"arch:{uname.machine}"}


def detect_tags(gpus: Sequence[Gpu], cpuinfo_path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """Every automatic tag of this node."""
    cpuinfo = cpuinfo_path.read_text() if cpuinfo_path.exists() else ""
    return cpu_tags(cpuinfo) | gpu_tags(gpus) | system_tags()


def detect_capacity(gpus: Sequence[Gpu]) -> Capacity:
    """What this node offers: the cores this process may use, physical memory, the GPUs and
    the memory of each (of the smallest: the ledger hands out GPUs whatever their memory).

    Task workspaces are tmpfs mounts (see the worker), so they are bounded by memory, not by a
    disk: the workspace capacity is the memory too.
    """
    memory = psutil.virtual_memory().total
    return Capacity(
        cpus=len(os.sched_getaffinity(0)),
        memory=memory,
        gpus=len(gpus),
        gpu_memory=min((gpu.memory for gpu in gpus), default=0),
        workspace=memory,
    )
