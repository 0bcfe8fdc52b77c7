"""Input files given by folder or glob: a task folder's ``files`` entry ``{"folder": ...}`` or
``{"glob": ...}`` becomes one entry per file where the folder is read; a server never sees one."""

import json
import os
from pathlib import Path

import pytest

from kolejka.common import SpecError, Task, load_task


def folder_with(tmp_path: Path, files: dict[str, object], present: list[str]) -> Path:
    for name in present:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (tmp_path / "kolejka_task.json").write_text(
        json.dumps({"image": "busybox", "args": ["true"], "files": files})
    )
    return tmp_path


def paths(task: Task) -> dict[str, str | None]:
    return {name: spec.path for name, spec in task.files.items()}


def test_it_gives_every_file_below_a_folder_under_the_entry_s_name(tmp_path):
    present = ["problem/tests/1.in", "problem/tests/1.out", "problem/tests/deep/2.in", "x.sh"]
    folder = folder_with(tmp_path, {"t": {"folder": "problem/tests"}, "x.sh": "x.sh"}, present)
    assert paths(load_task(folder)) == {
        "t/1.in": "problem/tests/1.in",
        "t/1.out": "problem/tests/1.out",
        "t/deep/2.in": "problem/tests/deep/2.in",
        "x.sh": "x.sh",
    }


def test_it_gives_the_files_a_glob_matches_named_from_its_literal_folders(tmp_path):
    present = ["tests/a.in", "tests/a.out", "tests/more/b.in", "c.in"]
    folder = folder_with(tmp_path, {"in": {"glob": "tests/**/*.in"}}, present)
    assert paths(load_task(folder)) == {"in/a.in": "tests/a.in", "in/more/b.in": "tests/more/b.in"}
    top = folder_with(tmp_path, {"all": {"glob": "*"}}, [])
    # The task's own spec is never one of its input files.
    assert paths(load_task(top)) == {"all/c.in": "c.in"}


def test_it_follows_symlinked_files_but_never_enters_a_symlinked_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.in").write_text("theirs")
    task = tmp_path / "task"
    folder = folder_with(task, {"t": {"folder": "tests"}}, ["tests/1.in"])
    os.symlink(outside / "secret.in", folder / "tests/2.in")  # as kolejka-judge writes
    os.symlink(outside, folder / "tests/loop")
    os.symlink(folder / "tests", folder / "tests/self")
    assert paths(load_task(folder)) == {"t/1.in": "tests/1.in", "t/2.in": "tests/2.in"}


@pytest.mark.parametrize(
    ("files", "field", "message"),
    [
        ({"t": {"folder": "nowhere"}}, "files.t.folder", "is not a folder"),
        ({"t": {"glob": "tests/*.zip"}}, "files.t.glob", "matches no file"),
        ({"t": {"folder": "tests", "glob": "*"}}, "files.t", "exactly one of"),
        ({"t": {"folder": "../etc"}}, "files.t.folder", "'..'"),
        ({"t": {"folder": "tests"}, "t/1.in": "tests/1.in"}, "files.t", "another entry"),
        ({"t": {"folder": "tests"}, "t/s": {"glob": "tests/s/*"}}, "files.t/s", "another"),
    ],
)
def test_it_refuses_a_file_set_naming_the_entry(tmp_path, files, field, message):
    folder = folder_with(tmp_path, files, ["tests/1.in", "tests/s/2.in"])
    with pytest.raises(SpecError, match=message) as raised:
        load_task(folder)
    assert raised.value.field == field


def test_it_refuses_a_file_set_outside_a_task_folder():
    with pytest.raises(SpecError, match="read from a task folder") as raised:
        Task.from_dict({"image": "busybox", "args": ["true"], "files": {"t": {"folder": "x"}}})
    assert raised.value.field == "files.t"
