"""The ``retry`` policy of a task: read strictly, written back the same, and its decisions after
an attempt (which the server takes in the result's transaction)."""

import pytest

from kolejka.common import Result, RetryPolicy, SpecError, Status, Task

MiB = 2**20


def task(**fields):
    return Task.from_dict({"image": "kolejka/busybox:latest", "args": ["true"], **fields})


def test_it_reads_a_policy_and_writes_it_back_unchanged():
    policy = {
        "max": 3,
        "on_exit": [75, 137],
        "on_verdict": ["RUNTIME_ERROR", "TIME_LIMIT"],
        "on_memory_limit": "grow",
        "memory_max": "8G",
        "backoff": {"initial": "10s", "factor": 3.0, "max": "5min"},
    }
    read = task(retry=policy, limits={"memory": "1G"})
    assert read.retry is not None
    assert read.retry.on_verdict == (Status.RUNTIME_ERROR, Status.TIME_LIMIT)
    assert read.retry.memory_max == 8 * 2**30
    assert read.retry.backoff.max == 300
    assert read.to_dict()["retry"] == {**policy, "backoff": {**policy["backoff"], "max": "300s"}}
    assert task(**read.to_dict()) == read


def test_it_leaves_a_task_without_a_policy_in_the_original_format():
    assert "retry" not in task().to_dict()
    assert task().retry is None


def test_it_writes_a_constant_backoff_as_a_duration():
    read = task(retry={"on_exit": [75], "max": 2, "backoff": "10s"})
    assert read.to_dict()["retry"]["backoff"] == "10s"
    assert [read.retry.backoff.delay(n) for n in (1, 2, 3)] == [10, 10, 10]


def test_it_spaces_re_runs_exponentially_up_to_the_backoff_maximum():
    read = task(retry={"on_exit": [75], "max": 9, "backoff": {"initial": "1s", "max": "10s"}})
    assert [read.retry.backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize(
    ("policy", "field", "problem"),
    [
        ("3", "retry", "must be an object"),
        ({"max": 2}, "retry", "names nothing to retry on"),
        ({"on_exit": [75]}, "retry.max", "is required"),
        ({"on_exit": [75], "max": 0}, "retry.max", "at least 1"),
        ({"on_exit": [75], "max": -1}, "retry.max", "must not be negative"),
        ({"on_exit": [75], "max": 101}, "retry.max", "at most 100"),
        ({"on_exit": [75], "max": 2, "tries": 3}, "retry.tries", "unknown key"),
        ({"on_exit": [], "max": 2}, "retry.on_exit", "non-empty list"),
        ({"on_exit": [0], "max": 2}, "retry.on_exit[0]", "non-zero"),
        ({"on_exit": ["75"], "max": 2}, "retry.on_exit[0]", "whole number"),
        ({"on_verdict": ["RTE"], "max": 2}, "retry.on_verdict[0]", "must be one of"),
        ({"on_verdict": ["OK"], "max": 2}, "retry.on_verdict[0]", "must be one of"),
        ({"on_verdict": ["SYSTEM_ERROR"], "max": 2}, "retry.on_verdict[0]", "must be one of"),
        ({"on_memory_limit": "double", "max": 2}, "retry.on_memory_limit", '"grow"'),
        ({"on_exit": [75], "memory_max": "1G", "max": 2}, "retry.memory_max", "goes with"),
        ({"on_memory_limit": "grow", "memory_max": "32M", "max": 2}, "retry.memory_max", "below"),
        (
            {"on_memory_limit": "grow", "memory_max": "2048P", "max": 2},
            "retry.memory_max",
            "at most",
        ),
        ({"on_exit": [75], "max": 2, "backoff": "-1s"}, "retry.backoff", "must not be negative"),
        (
            {"on_exit": [75], "max": 2, "backoff": {"factor": 2}},
            "retry.backoff.initial",
            "required",
        ),
        (
            {"on_exit": [75], "max": 2, "backoff": {"initial": "1s", "factor": 0.5}},
            "retry.backoff.factor",
            "from 1 to 100",
        ),
        (
            {"on_exit": [75], "max": 2, "backoff": {"initial": "10s", "max": "1s"}},
            "retry.backoff.max",
            "not be shorter",
        ),
    ],
)
def test_it_refuses_a_bad_policy_naming_the_field(policy, field, problem):
    with pytest.raises(SpecError) as error:
        task(retry=policy, limits={"memory": "64M"})
    assert error.value.field == field
    assert problem in error.value.problem


def test_it_re_runs_on_the_named_exit_codes_and_verdicts_until_max():
    policy = RetryPolicy.from_dict({"on_exit": [75], "on_verdict": ["TIME_LIMIT"], "max": 2})
    assert policy.after(75, Status.RUNTIME_ERROR, None, None, 0).why == "exit code 75"
    assert policy.after(137, Status.TIME_LIMIT, None, None, 1).why == "verdict TIME_LIMIT"
    assert policy.after(75, Status.RUNTIME_ERROR, None, None, 2) is None
    assert policy.after(1, Status.RUNTIME_ERROR, None, None, 0) is None
    assert policy.after(0, Status.OK, None, None, 0) is None


def test_it_doubles_the_memory_up_to_the_cap_and_the_largest_node():
    policy = RetryPolicy.from_dict({"on_memory_limit": "grow", "memory_max": "200M", "max": 9})
    assert policy.after(137, Status.MEMORY_LIMIT, 64 * MiB, None, 0).memory == 128 * MiB
    assert policy.after(137, Status.MEMORY_LIMIT, 128 * MiB, None, 1).memory == 200 * MiB
    assert policy.after(137, Status.MEMORY_LIMIT, 200 * MiB, None, 2) is None
    assert policy.after(137, Status.MEMORY_LIMIT, 64 * MiB, 100 * MiB, 0).memory == 100 * MiB
    assert policy.after(137, Status.MEMORY_LIMIT, 100 * MiB, 100 * MiB, 1) is None


def test_it_re_runs_at_the_same_memory_once_growth_is_capped_only_if_a_rule_says_so():
    policy = RetryPolicy.from_dict(
        {"on_memory_limit": "grow", "memory_max": "128M", "on_verdict": ["MEMORY_LIMIT"], "max": 5}
    )
    grown = policy.after(137, Status.MEMORY_LIMIT, 64 * MiB, None, 0)
    assert grown.memory == 128 * MiB and "grown to 128M" in grown.why
    same = policy.after(137, Status.MEMORY_LIMIT, 128 * MiB, None, 1)
    assert (same.memory, same.why) == (None, "verdict MEMORY_LIMIT")


def test_it_lists_attempts_in_the_result_and_reads_them_back():
    result = Result.from_dict(
        {
            "result": 0,
            "status": "OK",
            "limits": {"memory": "256M"},
            "stats": {"memory": {"max_usage": "201M"}},
        }
    )
    result.attempts = [result.attempt(3, None)]
    written = result.to_dict()
    assert written["attempts"] == [
        {
            "attempt": 3,
            "result": 0,
            "status": "OK",
            "memory": "256M",
            "memory_peak": "201M",
            "retry": None,
        }
    ]
    assert Result.from_dict(written).attempts == result.attempts
    assert "attempts" not in Result.from_dict({"result": 0}).to_dict()


def test_it_refuses_a_result_whose_attempts_are_not_a_list():
    with pytest.raises(SpecError) as error:
        Result.from_dict({"result": 0, "attempts": {"attempt": 1}})
    assert error.value.field == "attempts"
