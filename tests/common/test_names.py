"""The one file-name rule: relative, no escape, nothing the format reserves."""

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kolejka.common import SpecError, check_name


@pytest.mark.parametrize(
    "name", ["stdout.txt", "a/b/c.txt", "dir.with.dots/x", "zażółć.txt", "..hidden", "a..b", "x y"]
)
def test_it_accepts_relative_names(name):
    assert check_name(name, "files") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("/etc/passwd", "relative"),
        ("../escape", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("a//b", "empty or '.'"),
        ("a/", "empty or '.'"),
        ("./a", "empty or '.'"),
        ("x" * 256, "at most 255 bytes"),
        ("a/" * 2100 + "b", "at most 4096 bytes"),
        ("kolejka_task.json", "reserved"),
        ("kolejka_result.json", "reserved"),
        (7, "must be a string"),
        ("\udcff", "UTF-8"),
    ],
)
def test_it_refuses_names_that_could_escape_or_clash(name, message):
    with pytest.raises(SpecError, match=message) as caught:
        check_name(name, "files")
    assert caught.value.field == "files"


def test_it_allows_reserved_names_below_the_top_or_when_asked():
    assert check_name("sub/kolejka_task.json", "files") == "sub/kolejka_task.json"
    assert check_name("kolejka_task.json", "path", reserved=False) == "kolejka_task.json"


@given(st.lists(st.sampled_from(["a", "b", ".", "/", "\\", "\x00", "..", "/.."])).map("".join))
def test_it_never_accepts_a_name_that_leaves_its_folder(name):
    try:
        check_name(name, "files")
    except SpecError:
        return
    joined = posixpath.normpath(posixpath.join("/root/task", name))
    assert joined.startswith("/root/task/")
    assert posixpath.relpath(joined, "/root/task") == name
