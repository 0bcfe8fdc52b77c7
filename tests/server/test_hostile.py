"""Hostile JSON gets a 4xx in the one error shape, never a 5xx, and changes nothing: nesting
10^4 deep, NUL characters and lone surrogates (which PostgreSQL's jsonb cannot store), numbers
past a float, NaN, duplicate keys, bad bytes in query strings and paths; on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .flows import register, spec
from .harness import Server, Template, serve


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hostile(
    request: pytest.FixtureRequest,
    templates: dict[str, Template],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    with serve(templates[request.param], tmp_path_factory.mktemp("hostile") / "data") as server:
        register(server.api("fred"), "h1")
        yield server


def refused(answer, status: int = 400) -> dict:
    assert answer.status_code == status, answer.text[:500]
    body = answer.json()
    assert isinstance(body["code"], str) and isinstance(body["detail"], str)
    return body


def post_raw(server: Server, path: str, text: str, user: str = "alice"):
    return server.api(user).post(
        path,
        data=text.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"},
    )


def nothing_queued(server: Server) -> None:
    assert server.api("ada").get("tasks/").json()["results"] == []


def test_it_refuses_json_nested_ten_thousand_deep(hostile: Server):
    deep = '{"task": ' + "[" * 10_000 + "]" * 10_000 + "}"
    assert refused(post_raw(hostile, "tasks/", deep))["code"] == "parse_error"
    merely_deep = '{"task": {"image": "x", "args": ["a"], "id": ' + "[" * 100 + "]" * 100 + "}}"
    assert "deep" in refused(post_raw(hostile, "tasks/", merely_deep))["detail"]
    nothing_queued(hostile)


@pytest.mark.parametrize(
    ("field", "task"),
    [
        ("task.image", spec(image="kolejka/busybox\u0000:latest")),
        ("task.id", spec(id="a\u0000b")),
        ("task.args[1]", spec(args=["echo", "\ud800"])),
        ("task.environment.X", spec(environment={"X": "\udfff"})),
        ("task.environment.\\ud83d", spec(environment={"\ud83d": "x"})),
    ],
)
def test_it_refuses_nul_and_lone_surrogates_naming_the_field(hostile: Server, field, task):
    text = json.dumps({"task": task})  # ensure_ascii: the characters travel as \\u escapes
    body = refused(post_raw(hostile, "tasks/", text))
    assert body["field"] == field
    nothing_queued(hostile)


def test_it_takes_a_surrogate_pair_that_makes_one_character(hostile: Server):
    text = json.dumps({"task": spec(args=["echo", "\U0001f600"], **{"requires": ["nowhere"]})})
    answer = post_raw(hostile, "tasks/", text)
    assert answer.status_code == 201, answer.text
    assert answer.json()["task"]["args"] == ["echo", "\U0001f600"]
    hostile.api("alice").delete(f"tasks/{answer.json()['key']}/")


@pytest.mark.parametrize(
    "text",
    [
        '{"task": {"image": "x", "args": ["a"]}, "task": {"image": "y", "args": ["b"]}}',
        '{"task": {"image": "x", "image": "y", "args": ["a"]}}',
        '{"task": {"image": "x", "args": ["a"]}, "priority": 1e999}',
        '{"task": {"image": "x", "args": ["a"]}, "priority": NaN}',
        '{"task": {"image": "x", "args": ["a"]}, "priority": ' + "9" * 5000 + "}",
    ],
)
def test_it_refuses_duplicate_keys_and_numbers_past_a_float(hostile: Server, text):
    assert refused(post_raw(hostile, "tasks/", text))["code"] == "parse_error"
    nothing_queued(hostile)


def test_it_refuses_a_huge_whole_number_naming_the_field(hostile: Server):
    body = refused(hostile.api("alice").post("tasks/", json={"task": spec(), "priority": 10**30}))
    assert body["field"] == "priority"


def test_it_refuses_bad_bytes_in_query_strings_and_paths(hostile: Server):
    alice, fred = hostile.api("alice"), hostile.api("fred")
    assert refused(alice.get("images/?name=%00%C2%BA"))["field"] == "name"
    assert refused(alice.get("tasks/?owner=%00"))["field"] == "owner"
    # Bytes that are not UTF-8 (an encoded surrogate) arrive as U+FFFD: a batch that is not.
    assert alice.get("tasks/?batch=%ED%A0%80").json()["results"] == []
    assert refused(alice.get("tasks/?colour=red"))["field"] == "colour"
    assert refused(alice.get("tasks/%00/"), 404)["code"] == "not_found"
    assert refused(alice.get("batches/%00/"), 404)["code"] == "not_found"
    assert refused(alice.get("blobs/%00/"), 404)["code"] == "not_found"
    assert refused(fred.post("nodes/%00/claim/", json={}), 404)["code"] == "not_found"
    assert refused(fred.put("nodes/a%00b/", json={}))["field"] == "name"
    assert refused(fred.post("leases/%00/heartbeat/", json={}), 404)["code"] == "not_found"


def test_it_refuses_a_body_that_is_not_utf8(hostile: Server):
    answer = hostile.api("alice").post(
        "tasks/", data=b'{"task": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert refused(answer)["code"] == "parse_error"


# Hostile JSON documents, written out as text: what json.dumps cannot write is in them too.
HOSTILE_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d\ude00", "a\x00b", "\u2028"]),
)


def _string(text: str) -> str:
    return json.dumps(text)  # \\u escapes for NUL and surrogates


LEAVES = st.one_of(
    HOSTILE_TEXT.map(_string),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1e-999", "0.1", "true", "null", "{}"]),
)


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{_string(key)}: {value}" for key, value in pairs) + "}"


def _duplicated(pairs: list[tuple[str, str]]) -> str:
    return _object([*pairs, pairs[0]]) if pairs else "{}"


DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(HOSTILE_TEXT, inner), max_size=4).map(_object),
        st.lists(st.tuples(HOSTILE_TEXT, inner), min_size=1, max_size=3).map(_duplicated),
        st.integers(min_value=65, max_value=3000).map(lambda n: "[" * n + "]" * n),
    ),
    max_leaves=12,
)
KNOWN = st.sampled_from(["task", "tasks", "priority", "image", "args", "environment", "wait"])
BODIES = st.one_of(
    DOCUMENTS,
    st.lists(st.tuples(KNOWN, DOCUMENTS), min_size=1, max_size=3).map(_object),
    st.tuples(DOCUMENTS).map(
        lambda d: '{"task": {"image": "x", "args": ["a"], "id": ' + d[0] + "}}"
    ),
    st.tuples(DOCUMENTS).map(lambda d: '{"tasks": [{"task": ' + d[0] + "}]}"),
)
ENDPOINTS = [
    ("POST", "tasks/", "alice"),
    ("POST", "tasks/batch/", "alice"),
    ("PUT", "nodes/h1/", "fred"),
    ("POST", "nodes/h1/claim/", "fred"),
    ("PUT", "images/", "ada"),
    ("POST", "auth/token/", None),
]


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
def test_it_never_fails_on_hostile_json(hostile: Server, body: str):
    for method, path, user in ENDPOINTS:
        answer = hostile.api(user).request(
            method,
            path,
            data=body.encode("utf-8", "surrogatepass"),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code < 500, (method, path, body[:300], answer.text[:300])
        if answer.status_code >= 400:
            assert isinstance(answer.json()["code"], str), answer.text
        elif path.startswith("tasks/"):
            # The rare hostile body that is a valid task: take it back out.
            tasks = answer.json().get("tasks") or [answer.json()]
            for task in tasks:
                hostile.api("alice").delete(f"tasks/{task['key']}/")
