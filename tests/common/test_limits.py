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
