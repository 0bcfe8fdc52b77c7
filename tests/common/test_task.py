"""kolejka_task.json: the original's task folders load unchanged; bad fields are named."""

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kolejka.common import (
    Collect,
    FileSpec,
    Limits,
    SpecError,
    Task,
    check_task_files,
    load_task,
    save_task,
)

# The task files of the original kolejka's examples, verbatim.
ORIGINAL_EXAMPLES = {
    "alpine": {
        "id": "example_alpine",
        "image": "alpine:latest",
        "files": {"test.sh": {"path": "test.sh"}},
        "args": ["./test.sh"],
        "stderr": "console.txt",
        "stdout": "console.txt",
    },
    "debian": {
        "id": "example_debian",
        "image": "debian:latest",
        "files": {"test.sh": {"path": "test.sh"}},
        "args": ["./test.sh"],
        "stderr": "console.txt",
        "stdout": "console.txt",
    },
    "forkbomb": {
        "id": "example_forkbomb",
        "image": "gcc:latest",
        "files": {"test.sh": {"path": "test.sh"}, "example.cpp": {"path": "example.cpp"}},
        "args": ["./test.sh"],
        "limits": {"time": "10s", "pids": "512"},
        "stderr": "console.txt",
        "stdout": "console.txt",
    },
    "rambomb": {
        "id": "example_forkbomb",
        "image": "gcc:latest",
        "files": {"test.sh": {"path": "test.sh"}, "example.cpp": {"path": "example.cpp"}},
        "args": ["./test.sh"],
        "limits": {"time": "10s", "memory": "256M", "swap": 0},
        "stderr": "console.txt",
        "stdout": "console.txt",
    },
    "timebomb": {
        "id": "example_timebomb",
        "image": "gcc:latest",
        "files": {"test.sh": {"path": "test.sh"}, "example.cpp": {"path": "example.cpp"}},
        "args": ["./test.sh"],
        "limits": {"time": "15s", "memory": "256M", "swap": 0},
        "stderr": "console.txt",
        "stdout": "console.txt",
    },
    # The original README's example, in the form it predates "args" and "limits".
    "readme": {
        "image": "ubuntu:xenial",
        "exec": ["uname"],
        "memory": "64M",
        "cpus": "1",
        "time": "1s",
        "pids": "16",
        "stdout": "stdout.txt",
    },
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_EXAMPLES))
def test_it_loads_the_original_examples_unchanged(name):
    task = Task.from_dict(ORIGINAL_EXAMPLES[name])
    assert task.args
    assert Task.from_dict(task.to_dict()) == task


def test_it_reads_the_original_limits_with_their_units():
    task = Task.from_dict(ORIGINAL_EXAMPLES["rambomb"])
    assert task.limits == Limits(time=10.0, memory=256 * 2**20, swap=0)
    assert task.merged_output


def test_it_reads_the_readme_form_with_top_level_limits():
    task = Task.from_dict(ORIGINAL_EXAMPLES["readme"])
    assert task.args == ("uname",)
    assert task.limits == Limits(memory=64 * 2**20, cpus=1, time=1.0, pids=16)
    assert task.image == "ubuntu:xenial"
    assert task.stdout == "stdout.txt"


def test_it_reads_the_short_file_form():
    task = Task.from_dict({"image": "x", "args": ["a"], "files": {"in.txt": "data/in.txt"}})
    assert task.files == {"in.txt": FileSpec(path="data/in.txt")}


def test_it_reads_cpu_time_as_a_new_limit():
    task = Task.from_dict({"image": "x", "args": ["a"], "limits": {"cpu_time": "2s"}})
    assert task.limits.cpu_time == 2.0


def base(**changes):
    return {"image": "busybox", "args": ["true"], **changes}


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (base(limits={"memroy": "1G"}), "limits.memroy", "unknown limit"),
        (base(limit={"memory": "1G"}), "limit", "unknown field"),
        (base(limits={"memory": "-5M"}), "limits.memory", "negative"),
        (base(limits={"memory": "64X"}), "limits.memory", "unknown size unit"),
        (base(limits={"cpus": 0}), "limits.cpus", "at least 1"),
        (base(limits={"pids": "0"}), "limits.pids", "at least 1"),
        (base(limits={"time": "0s"}), "limits.time", "greater than zero"),
        (base(limits={"network": "sometimes"}), "limits.network", "true or false"),
        (base(limits=[1]), "limits", "must be an object"),
        (base(args="uname -a"), "args", "list of strings"),
        (base(args=[]), "args", "program to run"),
        (base(args=["ls", None]), "args[1]", "must be a string"),
        (base(args=["ls", "a\x00b"]), "args[1]", "NUL"),
        (base(image=""), "image", "docker image"),
        (base(image="two words"), "image", "docker image"),
        ({"args": ["true"]}, "image", "docker image"),
        (base(files={"../x": {"path": "x"}}), "files.../x", "'..'"),
        (base(files={"x": {"path": "/etc/passwd"}}), "files.x.path", "relative"),
        (base(files={"x": {"path": "a", "reference": "b"}}), "files.x", "exactly one"),
        (base(files={"x": {"url": "http://x"}}), "files.x.url", "unknown key"),
        (base(files={"a": "a", "a/b": "b"}), "files.a/b", "inside another file"),
        (base(files={"kolejka_task.json": "t"}), "files.kolejka_task.json", "reserved"),
        (base(stdout="../out"), "stdout", "'..'"),
        (base(stdin="in.txt"), "stdin", "one of the task's files"),
        (base(environment={"A=B": "x"}), "environment.A=B", "variable name"),
        (base(environment={"A": ["x"]}), "environment.A", "must be a string"),
        (base(collect=[{"glob": "/etc/*"}]), "collect[0].glob", "relative"),
        (base(collect=[{"glob": "*", "strip": -1}]), "collect[0].strip", "negative"),
        (base(collect=[{"pattern": "*"}]), "collect[0].pattern", "unknown key"),
        (base(collect={"glob": "*"}), "collect", "must be a list"),
        (base(callback_url="file:///etc/passwd"), "callback_url", "http"),
        (base(resources={"licence": 0}), "resources.licence", "at least 1"),
        (base(notify={"webhook": "http://x"}), "notify", "must be a list"),
        (base(notify=["http://x"]), "notify[0]", "webhook"),
        (base(notify=[{"webhook": "ftp://x"}]), "notify[0].webhook", "http"),
        (base(notify=[{"webhook": "http://x", "email": "a@b.c"}]), "notify[0]", "exactly one"),
        (base(notify=[{"email": "nobody"}]), "notify[0].email", "e-mail address"),
        (base(notify=[{"email": "a@b.c", "format": "slack"}]), "notify[0].format", "webhooks"),
        (base(notify=[{"webhook": "http://x", "format": "xml"}]), "notify[0].format", "json"),
        (
            base(notify=[{"webhook": "http://x", "events": ["complete"]}]),
            "notify[0].events",
            "event",
        ),
        (base(notify=[{"webhook": "http://x", "events": []}]), "notify[0].events", "non-empty"),
        (base(notify=[{"webhook": "http://x", "secret": "s"}]), "notify[0].secret", "unknown"),
        (base(notify=[{"email": "a@b.c"}] * 9), "notify", "at most 8"),
        (base(exclusive="perhaps"), "exclusive", "true or false"),
        ({**base(), "exec": ["x"]}, "exec", "not both"),
        (base(memory="1G", limits={"memory": "2G"}), "memory", "both at the top level"),
        ([], "task", "JSON object"),
    ],
)
def test_it_refuses_invalid_tasks_naming_the_field(document, field, message):
    with pytest.raises(SpecError, match=message) as caught:
        Task.from_dict(document)
    assert caught.value.field == field


def test_it_keeps_numbers_in_args_and_environment_as_strings():
    task = Task.from_dict(base(args=["sleep", 5], environment={"N": 3}))
    assert task.args == ("sleep", "5")
    assert task.environment == {"N": "3"}


def write_folder(folder, document, files=()):
    folder.mkdir(exist_ok=True)
    (folder / "kolejka_task.json").write_text(json.dumps(document))
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)


def test_it_loads_a_task_folder_with_its_files(tmp_path):
    write_folder(
        tmp_path / "t", base(files={"a.txt": "a.txt", "d/b": {"path": "d/b"}}), ["a.txt", "d/b"]
    )
    task = load_task(tmp_path / "t")
    assert set(task.files) == {"a.txt", "d/b"}


def test_it_refuses_a_file_missing_from_the_folder(tmp_path):
    write_folder(tmp_path / "t", base(files={"a.txt": "a.txt"}))
    with pytest.raises(SpecError, match="not a file in the task folder"):
        load_task(tmp_path / "t")


def test_it_follows_a_symlink_out_of_the_folder_as_the_original_does(tmp_path):
    (tmp_path / "solution.cpp").write_text("int main() {}")
    write_folder(tmp_path / "t", base(files={"solution/a.cpp": "solution/a.cpp"}))
    (tmp_path / "t" / "solution").mkdir()
    os.symlink(tmp_path / "solution.cpp", tmp_path / "t" / "solution" / "a.cpp")
    assert load_task(tmp_path / "t").files["solution/a.cpp"].path == "solution/a.cpp"


@pytest.mark.parametrize("target", ["folder", "fifo", "device", "missing"])
def test_it_refuses_a_symlink_that_ends_at_anything_but_a_regular_file(tmp_path, target):
    ends = {
        "folder": tmp_path,
        "fifo": tmp_path / "fifo",
        "device": Path("/dev/zero"),
        "missing": tmp_path / "gone",
    }
    os.mkfifo(tmp_path / "fifo")
    write_folder(tmp_path / "t", base(files={"a.txt": "a.txt"}))
    os.symlink(ends[target], tmp_path / "t" / "a.txt")
    why = "is a broken symlink" if target == "missing" else "is not a file"
    with pytest.raises(SpecError, match=why) as caught:
        load_task(tmp_path / "t")
    assert caught.value.field == "files.a.txt.path"


def test_it_refuses_server_references_in_a_local_task(tmp_path):
    write_folder(tmp_path / "t", base(files={"a": {"reference": "ab" * 32}}))
    with pytest.raises(SpecError, match="no server blobs"):
        load_task(tmp_path / "t")
    assert load_task(tmp_path / "t", local=False).files["a"].reference == "ab" * 32


def test_it_checks_the_files_of_a_task_built_in_memory_against_a_folder(tmp_path):
    (tmp_path / "in.txt").write_text("data")
    (tmp_path / "secret").write_text("host file")
    task = Task.from_dict(base(files={"in.txt": "in.txt"}))
    check_task_files(task, tmp_path)
    task = Task.from_dict(base(files={"x": "nowhere"}))
    with pytest.raises(SpecError, match="not a file in the task folder"):
        check_task_files(task, tmp_path)
    (tmp_path / "box").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "box" / "link")
    task = Task.from_dict(base(files={"x": "link"}))
    with pytest.raises(SpecError, match="broken symlink") as caught:
        check_task_files(task, tmp_path / "box")
    assert caught.value.field == "files.x.path"


def test_it_names_the_file_when_the_json_is_broken(tmp_path):
    (tmp_path / "kolejka_task.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON") as caught:
        load_task(tmp_path)
    assert caught.value.field == "kolejka_task.json"


def test_it_says_when_the_task_file_is_missing(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_task(tmp_path)


def test_it_saves_a_task_that_loads_back(tmp_path):
    task = Task.from_dict(ORIGINAL_EXAMPLES["forkbomb"])
    task.files = {}
    save_task(task, tmp_path / "out")
    assert load_task(tmp_path / "out") == task


names = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=10)
sizes = st.integers(min_value=1, max_value=2**40)
durations = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)
limits = st.builds(
    Limits,
    cpus=st.none() | st.integers(1, 256),
    memory=st.none() | sizes,
    swap=st.none() | st.integers(0, 2**40),
    pids=st.none() | st.integers(1, 10**6),
    time=st.none() | durations,
    cpu_time=st.none() | durations,
    workspace=st.none() | sizes,
    network=st.none() | st.booleans(),
    root=st.none() | st.booleans(),
    gpus=st.none() | st.integers(0, 8),
)
tasks = st.builds(
    Task,
    image=st.sampled_from(["busybox", "kolejka/debian:bookworm", "registry:5000/a/b@sha256:00"]),
    args=st.lists(text, min_size=1, max_size=4).map(tuple),
    id=st.none() | st.text(max_size=8),
    requires=st.lists(names, max_size=3).map(tuple),
    exclusive=st.none() | st.booleans(),
    limits=limits,
    environment=st.dictionaries(st.from_regex(r"[A-Z_]{1,6}", fullmatch=True), text),
    stdout=st.none() | paths,
    stderr=st.none() | paths,
    files=st.dictionaries(paths, st.builds(FileSpec, path=paths), max_size=1),
    collect=st.lists(st.builds(Collect, glob=paths, strip=st.integers(0, 3)), max_size=2).map(
        tuple
    ),
    resources=st.dictionaries(names, st.integers(1, 4), max_size=2),
)


@given(tasks)
def test_it_round_trips_tasks_through_json(task):
    document = json.loads(json.dumps(task.to_dict()))
    assert Task.from_dict(document) == task


def test_it_reads_and_writes_notification_targets():
    entries = [
        {"webhook": "https://hooks.example.org/k", "events": ["failed", "done"]},
        {"webhook": "https://hooks.slack.com/services/T/B/X", "format": "slack"},
        {"email": "judge@example.org"},
    ]
    task = Task.from_dict({"image": "busybox", "args": ["true"], "notify": entries})
    assert task.to_dict()["notify"] == [
        {"webhook": "https://hooks.example.org/k", "events": ["done", "failed"], "format": "json"},
        {
            "webhook": "https://hooks.slack.com/services/T/B/X",
            "events": ["done", "failed", "cancelled"],
            "format": "slack",
        },
        {"email": "judge@example.org", "events": ["done", "failed", "cancelled"]},
    ]
    assert Task.from_dict(task.to_dict()) == task
