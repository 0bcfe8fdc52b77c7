"""Detecting what a node has, from recorded nvidia-smi output and /proc/cpuinfo."""

from pathlib import Path

import pytest

from kolejka.foreman.hardware import (
    NvidiaSmiError,
    cpu_tags,
    detect_capacity,
    detect_gpus,
    detect_tags,
    gpu_tags,
    parse_gpus,
    run_nvidia_smi,
    sample_gpu_usage,
)

DATA = Path(__file__).parent / "data"


def recorded(name):
    text = (DATA / name).read_text()
    calls = []

    def run(args):
        calls.append(list(args))
        return text

    run.calls = calls
    return run


def test_it_reads_gpus_from_recorded_nvidia_smi_output():
    run = recorded("nvidia-smi-2xa100.csv")
    gpus = detect_gpus(run)
    assert [(g.index, g.name, g.memory) for g in gpus] == [
        (0, "NVIDIA A100-SXM4-40GB", 40960 * 2**20),
        (1, "NVIDIA A100-SXM4-40GB", 40960 * 2**20),
    ]
    assert gpus[1].uuid == "GPU-9c0a4e1d-52b8-7d7e-1f2a-bb8d3c6a1e07"
    assert "--format=csv,noheader,nounits" in run.calls[0]


def test_it_offers_the_memory_of_the_smallest_gpu():
    a100 = detect_gpus(recorded("nvidia-smi-2xa100.csv"))
    assert detect_capacity(a100).gpu_memory == 40 * 2**30
    mixed = [a100[0], *detect_gpus(recorded("nvidia-smi-rtx4090.csv"))]
    assert detect_capacity(mixed).gpu_memory == min(gpu.memory for gpu in mixed) < 40 * 2**30
    assert detect_capacity([]).gpu_memory == 0


def test_it_reads_gpu_usage_samples():
    usage = sample_gpu_usage(recorded("nvidia-smi-usage-2xa100.csv"))
    assert (usage[0].utilization, usage[0].memory_used, usage[0].temperature) == (
        87,
        30512 * 2**20,
        71,
    )


def test_it_refuses_output_it_does_not_understand():
    with pytest.raises(NvidiaSmiError, match="unexpected nvidia-smi output"):
        parse_gpus((DATA / "nvidia-smi-no-driver.txt").read_text())


def test_it_has_no_gpus_without_nvidia_smi(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert run_nvidia_smi(["-L"]) == ""
    assert detect_gpus() == []


def test_it_reports_a_broken_driver(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\n/bin/cat {DATA / 'nvidia-smi-no-driver.txt'}\nexit 9\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NvidiaSmiError, match="couldn't communicate with the NVIDIA driver"):
        detect_gpus()


def test_it_runs_a_real_nvidia_smi_program_when_one_is_installed(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\n/bin/cat {DATA / 'nvidia-smi-rtx4090.csv'}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert [g.name for g in detect_gpus()] == ["NVIDIA GeForce RTX 4090"]


def test_it_tags_gpus_by_model():
    gpus = parse_gpus((DATA / "nvidia-smi-2xa100.csv").read_text())
    assert gpu_tags(gpus) == {"gpus:2", "gpu:nvidia", "gpu:a100-sxm4-40gb"}
    assert gpu_tags([]) == set()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpuinfo-epyc.txt", {"cpu:amd", "cpu:epyc-7763", "cpus:2"}),
        ("cpuinfo-xeon.txt", {"cpu:intel", "cpu:xeon-gold-6248r", "cpus:2"}),
    ],
)
def test_it_tags_cpus_by_vendor_model_and_count(name, expected):
    assert cpu_tags((DATA / name).read_text()) == expected


def test_it_detects_this_machine():
    tags = detect_tags([])
    assert any(tag.startswith("hostname:") for tag in tags)
    assert any(tag.startswith("kernel:") for tag in tags)
    capacity = detect_capacity([])
    assert capacity.cpus >= 1 and capacity.memory > 2**30
    assert capacity.workspace == capacity.memory
    assert capacity.gpus == 0
