"""The dependency rule shared by server, client and command line (`kolejka.common.after`)."""

from __future__ import annotations

import pytest

from kolejka.common import SpecError
from kolejka.common.after import MAX_AFTER, After, When, parse_after


def test_it_reads_the_short_and_the_long_forms_alike():
    assert parse_after(["t-1", "notok:b-2", "#3", "any:#0", {"key": "t-9", "when": "any"}]) == (
        After(When.OK, key="t-1"),
        After(When.NOTOK, key="b-2"),
        After(When.OK, position=3),
        After(When.ANY, position=0),
        After(When.ANY, key="t-9"),
    )
    assert After.from_dict({"position": 2}).to_dict() == {"position": 2, "when": "ok"}
    assert str(After(When.NOTOK, key="t-1")) == "notok:t-1"


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ("t-1", "after"),
        (["later:t-1"], "after[0].when"),
        ([{"key": "t-1", "position": 0}], "after[0]"),
        ([{}], "after[0]"),
        ([{"key": "t 1"}], "after[0].key"),
        ([{"position": -1}], "after[0].position"),
        ([{"position": True}], "after[0].position"),
        (["#x"], "after[0]"),
        ([{"key": "t-1", "if": "ok"}], "after[0]"),
        (["t-1", "ok:t-1"], "after"),
        (["t-1"] * (MAX_AFTER + 1), "after"),
    ],
)
def test_it_refuses_what_is_no_dependency_naming_the_field(given, field):
    with pytest.raises(SpecError) as refused:
        parse_after(given)
    assert refused.value.field == field


def test_it_meets_ok_notok_and_any_as_slurm_does():
    assert When.OK.met(True) and not When.OK.met(False)
    assert When.NOTOK.met(False) and not When.NOTOK.met(True)
    assert When.ANY.met(True) and When.ANY.met(False)
