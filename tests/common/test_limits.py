"""Limits: the `root` flag is read like `network` and granted only where the operator allows it."""

import pytest

from kolejka.common import Limits, SpecError


def test_it_reads_the_root_flag():
    assert Limits.from_dict({"root": "yes"}).root is True
    assert Limits.from_dict({"root": False}).to_dict() == {"root": False}


def test_it_refuses_a_root_flag_that_is_not_a_flag():
    with pytest.raises(SpecError, match=r"limits\.root"):
        Limits.from_dict({"root": "maybe"})


def test_it_grants_root_only_if_the_operator_allows_it():
    asked = Limits(root=True, network=True)
    assert asked.tightened(Limits(root=False)).root is False
    assert asked.tightened(Limits(root=True)).root is True
    assert Limits().with_defaults(Limits(root=False)).tightened(Limits(root=True)).root is False


@pytest.mark.parametrize(
    ("limit", "largest", "past"),
    [
        ("pids", 4194304, 2147483648),
        ("cpus", 8192, 8193),
        ("cpus_offset", 8191, 8192),
        ("memory", "1024P", "1025P"),
        ("swap", "1024P", 2**60 + 1),
        ("workspace", "1024P", "2048P"),
        ("storage", "1024P", "2048P"),
        ("image", "1024P", "2048P"),
        ("gpu_memory", "1024P", "2048P"),
        ("gpus", 1024, 1025),
        ("gpus_offset", 1023, 1024),
        ("time", "2147483647s", "100000D"),
        ("cpu_time", "2147483647s", 2**31),
    ],
)
def test_it_refuses_each_limit_past_the_largest_value_the_kernel_accepts(limit, largest, past):
    assert Limits.from_dict({limit: largest}).to_dict() == {limit: largest}
    with pytest.raises(SpecError, match=rf"^limits\.{limit}: must be at most .* \(got "):
        Limits.from_dict({limit: past})
