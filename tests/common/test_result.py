"""kolejka_result.json: original results load; unknown fields survive a round trip."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kolejka.common import (
    CpuStats,
    FileSpec,
    Limits,
    MemoryStats,
    PidsStats,
    Result,
    SpecError,
    Stats,
    Status,
    load_result,
    save_result,
)

# What the original's worker wrote for a task (field names and unit forms as it dumped them).
ORIGINAL_RESULT = {
    "id": "example_alpine",
    "result": 0,
    "stdout": "console.txt",
    "stderr": "console.txt",
    "files": {"console.txt": {"path": "console.txt"}},
    "limits": {"cpus": 1, "cpus_offset": 0, "memory": "1G", "pids": 16, "time": "10s", "gpus": 0},
    "tags": ["cpu:intel", "node01"],
    "stats": {
        "cpu": {"usage": "0.5s", "system": "0.1s", "user": "0.4s"},
        "cpus": {"0": {"usage": "0.5s", "system": "0.1s", "user": "0.4s"}},
        "memory": {"max_usage": "12M", "failures": 0},
        "pids": {"max_usage": 3, "failures": 0},
        "time": "0.8s",
        "gpus": {},
    },
}


def test_it_loads_an_original_result():
    result = Result.from_dict(ORIGINAL_RESULT)
    assert result.result == 0
    assert result.status is None
    assert result.stats.cpu == CpuStats(usage=0.5, system=0.1, user=0.4)
    assert result.stats.memory.max_usage == 12 * 2**20
    assert result.stats.pids.max_usage == 3
    assert result.stats.time == 0.8
    assert result.limits.cpus_offset == 0
    assert result.files == {"console.txt": FileSpec(path="console.txt")}


def test_it_loads_the_readme_result_form():
    result = Result.from_dict({"return": 0, "files": ["stdout.txt"]})
    assert result.result == 0
    assert result.files == {"stdout.txt": FileSpec(path="stdout.txt")}


def test_it_keeps_fields_a_newer_version_added():
    document = {
        **ORIGINAL_RESULT,
        "energy": {"joules": 12},
        "limits": {"memory": "1G", "quantum": 3},
        "stats": {**ORIGINAL_RESULT["stats"], "io": {"read": 5}, "memory": {"pss": "1M"}},
    }
    written = Result.from_dict(document).to_dict()
    assert written["energy"] == {"joules": 12}
    assert written["limits"]["quantum"] == 3
    assert written["stats"]["io"] == {"read": 5}
    assert written["stats"]["memory"]["pss"] == "1M"


def test_it_round_trips_an_original_result():
    result = Result.from_dict(ORIGINAL_RESULT)
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"status": "FINE"}, "status"),
        ({"result": "zero"}, "result"),
        ({"files": {"../x": {"path": "x"}}}, "files.../x"),
        ({"stats": {"memory": {"max_usage": "-1M"}}}, "stats.memory.max_usage"),
        ({"stats": {"cpu": {"usage": "fast"}}}, "stats.cpu.usage"),
        ({"tags": "node"}, "tags"),
        ({"limits": {"memory": "lots"}}, "limits.memory"),
        ({"stdout": "/dev/tty"}, "stdout"),
    ],
)
def test_it_refuses_invalid_known_fields(document, field):
    with pytest.raises(SpecError) as caught:
        Result.from_dict(document)
    assert caught.value.field == field


def test_it_saves_and_loads_a_result_folder(tmp_path):
    result = Result(id="t", result=1, status=Status.RUNTIME_ERROR, tags=["n1"])
    save_result(result, tmp_path)
    assert load_result(tmp_path) == result
    assert json.loads((tmp_path / "kolejka_result.json").read_text())["status"] == "RUNTIME_ERROR"


seconds = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)
sizes = st.none() | st.integers(min_value=0, max_value=2**50)
counts = st.none() | st.integers(min_value=0, max_value=10**6)
results = st.builds(
    Result,
    id=st.none() | st.text(max_size=6),
    result=st.none() | st.integers(-255, 255),
    status=st.none() | st.sampled_from(Status),
    error=st.none() | st.text(max_size=20),
    accounting=st.none() | st.sampled_from(["observer", "cgroup"]),
    files=st.dictionaries(
        st.sampled_from(["out.txt", "a/b.txt"]), st.builds(FileSpec, reference=st.just("ab" * 32))
    ),
    limits=st.builds(
        Limits, memory=st.none() | st.integers(1, 2**40), time=st.none() | st.just(1.5)
    ),
    tags=st.lists(st.text(max_size=5), max_size=3),
    stats=st.builds(
        Stats,
        cpu=st.builds(CpuStats, usage=seconds, user=seconds, system=seconds),
        memory=st.builds(MemoryStats, max_usage=sizes, failures=counts, oom_kills=counts),
        pids=st.builds(PidsStats, max_usage=counts, failures=counts),
        time=seconds,
    ),
    stdout=st.none() | st.just("out.txt"),
)


@given(results)
def test_it_round_trips_results_through_json(result):
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))) == result
