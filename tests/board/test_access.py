"""Who may open which board page and press which button: the API's roles and visibility, the
same table as tests/server/test_matrix.py's for the operations each page shows or does. Signed
in with a session through the board's own login page, as a browser is; every change carries
the CSRF token, and one without it is refused."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import requests

from ..server.flows import claim, finish, register, spec, submit, upload
from ..server.harness import PASSWORD, Server, Template, serve

UNCLAIMABLE = {"requires": ["nowhere"]}
CALLERS = ("alice", "bob", "fred", "ivan", "ada", None, "dora")
SIGNED_OUT = {None: 302, "dora": 302}  # to the login page


@dataclass
class World:
    queued: str  # alice's
    done: str  # alice's, with the output file out.txt
    cancelled: str  # alice's
    node: str


def make_world(server: Server) -> World:
    alice, fred = server.api("alice"), server.api("fred")
    node = register(fred, f"n-{os.urandom(3).hex()}")["name"]
    done = submit(alice)["key"]
    got = claim(fred, node, wait=10)
    assert got["task"]["key"] == done
    output = upload(fred, b"the output\n")
    finish(fred, got["lease"]["id"], files={"out.txt": {"reference": output}})
    cancelled = submit(alice, **UNCLAIMABLE)["key"]
    assert alice.post(f"tasks/{cancelled}/cancel/").status_code == 200
    return World(submit(alice, **UNCLAIMABLE)["key"], done, cancelled, node)


def session(server: Server, user: str | None) -> requests.Session:
    """A browser's session: the login page's CSRF cookie, then the form posted (when `user`)."""
    browser = requests.Session()
    page = browser.get(server.url + "/board/login/", timeout=60)
    assert page.status_code == 200
    if user is not None:
        browser.post(
            server.url + "/board/login/",
            data={"username": user, "password": PASSWORD, "csrfmiddlewaretoken": token(browser)},
            headers={"Referer": server.url + "/board/login/"},
            timeout=60,
        )
    return browser


def token(browser: requests.Session) -> str:
    return browser.cookies.get("csrftoken", "")


def readers(owner: int, other: int) -> dict[str | None, int]:
    return {"alice": owner, "bob": other, "fred": 403, "ivan": owner, "ada": owner}


def changers(owner: int, other: int) -> dict[str | None, int]:
    return {"alice": owner, "bob": other, "fred": 403, "ivan": 403, "ada": owner}


ROWS: dict[str, tuple[str, Callable[[World], str], dict[str | None, int]]] = {
    "board": ("GET", lambda w: "/board/", readers(200, 200)),
    "board poll": ("GET", lambda w: "/board/columns/", readers(200, 200)),
    "task page": ("GET", lambda w: f"/board/tasks/{w.queued}/", readers(200, 404)),
    "task poll": ("GET", lambda w: f"/board/tasks/{w.queued}/live/", readers(200, 404)),
    "task file": ("GET", lambda w: f"/board/tasks/{w.done}/files/out.txt", readers(200, 404)),
    "cancel": ("POST", lambda w: f"/board/tasks/{w.queued}/cancel/", changers(302, 404)),
    "retry": ("POST", lambda w: f"/board/tasks/{w.cancelled}/retry/", changers(302, 404)),
    "rejudge": ("POST", lambda w: f"/board/tasks/{w.done}/rejudge/", changers(302, 404)),
    "batches": ("GET", lambda w: "/board/batches/", readers(200, 200)),
    "batches poll": ("GET", lambda w: "/board/batches/live/", readers(200, 200)),
    "nodes": ("GET", lambda w: "/board/nodes/", dict.fromkeys(CALLERS[:5], 200)),
    "nodes poll": ("GET", lambda w: "/board/nodes/live/", dict.fromkeys(CALLERS[:5], 200)),
    "drain": (
        "POST",
        lambda w: f"/board/nodes/{w.node}/drain/",
        {**changers(403, 403), "ada": 302},
    ),
}


@pytest.fixture(scope="module")
def board(templates: dict[str, Template], tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with serve(templates["sqlite"], tmp_path_factory.mktemp("board") / "data") as server:
        yield server


@pytest.mark.parametrize("name", list(ROWS))
def test_it_lets_each_caller_do_exactly_what_its_role_may(board: Server, name: str):
    method, path, expected = ROWS[name]
    for caller in CALLERS:
        world = make_world(board)
        browser = session(board, caller)
        data = {"csrfmiddlewaretoken": token(browser), "drain": "1"}
        answer = browser.request(
            method,
            board.url + path(world),
            data=data if method == "POST" else None,
            headers={"Referer": board.url + "/board/"},
            allow_redirects=False,
            timeout=60,
        )
        want = {**SIGNED_OUT, **expected}[caller]
        assert answer.status_code == want, (caller, answer.status_code, answer.text[:300])
        if want == 302 and caller in SIGNED_OUT:
            assert answer.headers["Location"].startswith("/board/login/?next="), caller
        done = want == 302 and caller not in SIGNED_OUT  # a change made, not a sign-in asked
        ada = board.api("ada")
        changed = {"cancel": (world.queued, "queued", "cancelled")}
        changed["retry"] = (world.cancelled, "cancelled", "queued")
        changed["rejudge"] = (world.done, "done", "queued")
        if name in changed:
            key, before, after = changed[name]
            state = ada.get(f"tasks/{key}/").json()["state"]
            assert state == (after if done else before), (caller, state)
        # A rejudged task is queued again: out of the way of the next world's claim (cancelling
        # a task still done is refused and changes nothing).
        ada.post(f"tasks/{world.done}/cancel/")
        if name == "drain":
            shown = {node["name"]: node for node in ada.get("nodes/").json()["results"]}
            assert shown[world.node]["draining"] is done, caller


def test_it_refuses_a_change_without_the_csrf_token(board: Server):
    world = make_world(board)
    browser = session(board, "alice")
    forged = browser.post(f"{board.url}/board/tasks/{world.queued}/cancel/", timeout=60)
    assert forged.status_code == 403
    assert board.api("alice").get(f"tasks/{world.queued}/").json()["state"] == "queued"
    admin = session(board, "ada")
    forged = admin.post(
        f"{board.url}/board/nodes/{world.node}/drain/", data={"drain": "1"}, timeout=60
    )
    assert forged.status_code == 403
    shown = {node["name"]: node for node in board.api("ada").get("nodes/").json()["results"]}
    assert shown[world.node]["draining"] is False


def test_it_answers_a_poll_204_until_what_it_shows_changes(board: Server):
    browser = session(board, "bob")
    first = browser.get(board.url + "/board/columns/", timeout=60)
    shown = re.search(r'data-token="(\w+)"', first.text)
    assert first.status_code == 200 and shown is not None
    again = browser.get(board.url + "/board/columns/", params={"token": shown[1]}, timeout=60)
    assert again.status_code == 204 and again.content == b""
    key = submit(board.api("bob"), **UNCLAIMABLE)["key"]
    moved = browser.get(board.url + "/board/columns/", params={"token": shown[1]}, timeout=60)
    assert moved.status_code == 200 and f'id="card-{key}"' in moved.text


def cards(browser: requests.Session, server: Server, **filters: str) -> set[str]:
    page = browser.get(server.url + "/board/", params=filters, timeout=60)
    assert page.status_code == 200, page.text[:300]
    return set(re.findall(r'id="card-([\w-]+)"', page.text))


@pytest.fixture
def fresh(templates: dict[str, Template], tmp_path) -> Iterator[Server]:
    """A server of its own: every task it has fits in the board's columns."""
    with serve(templates["sqlite"], tmp_path / "data") as server:
        yield server


def test_it_filters_the_board_by_state_verdict_owner_batch_tag_and_key(fresh: Server):
    board = fresh
    world = make_world(board)
    tagged = submit(board.api("alice"), requires=["colour-blue"])["key"]
    batch = board.api("bob").post("tasks/batch/", json={"tasks": [{"task": spec(**UNCLAIMABLE)}]})
    in_batch = batch.json()["tasks"][0]["key"]
    ivan = session(board, "ivan")
    everything = cards(ivan, board)
    assert {world.queued, world.done, tagged, in_batch} <= everything
    assert world.done in cards(ivan, board, state="done")
    assert world.queued not in cards(ivan, board, state="done")
    assert world.done in cards(ivan, board, verdict="OK")
    assert not cards(ivan, board, verdict="TIME_LIMIT") & {world.done}
    assert cards(ivan, board, batch=batch.json()["batch"]) == {in_batch}
    assert in_batch in cards(ivan, board, owner="bob")
    assert not cards(ivan, board, owner="bob") & {world.queued, world.done, tagged}
    assert cards(ivan, board, tag="colour-blue") == {tagged}
    assert cards(ivan, board, key=world.done) == {world.done}
    refused = ivan.get(board.url + "/board/", params={"state": "sleeping"}, timeout=60)
    assert refused.status_code == 400 and "state" in refused.text


def test_it_leaves_the_api_admin_and_legacy_paths_where_they_were(board: Server):
    root = requests.get(board.url + "/", allow_redirects=False, timeout=60)
    assert root.status_code == 302 and root.headers["Location"] == "/board/"
    legacy = requests.get(board.url + "/logout/", timeout=60)
    assert legacy.status_code == 200 and legacy.json()["status"] == "OK"
    assert requests.get(board.url + "/api/v1/auth/me/", timeout=60).status_code == 401
    admin = requests.get(board.url + "/admin/", allow_redirects=False, timeout=60)
    assert admin.status_code == 302 and admin.headers["Location"].startswith("/admin/login/")
    for asset in ("/static/board/board.css", "/static/django_htmx/htmx-2.min.js"):
        served = requests.get(board.url + asset, timeout=60)
        assert served.status_code == 200 and len(served.content) > 1000, asset


def test_it_sends_a_signed_out_poll_to_the_sign_in_page_whole(board: Server):
    """A live part polling after its session ended must not show the sign-in page inside
    itself: htmx is told to take the whole page there."""
    page = board.url + "/board/?state=queued"
    poll = requests.get(
        board.url + "/board/columns/?state=queued",
        headers={"HX-Request": "true", "HX-Current-URL": page},
        allow_redirects=False,
        timeout=60,
    )
    assert poll.status_code == 200 and poll.content == b""
    assert poll.headers["HX-Redirect"] == "/board/login/?" + urlencode({"next": page})


def test_it_shows_why_a_queued_task_waits_on_its_page(board: Server):
    world = make_world(board)
    page = session(board, "alice").get(f"{board.url}/board/tasks/{world.queued}/", timeout=60)
    assert page.status_code == 200
    why = re.search(r'<section id="why">(.*?)</section>', page.text, re.S)
    assert why is not None, page.text[:500]
    assert "no registered node can ever run it" in why[1]
    assert f"<td>{world.node}</td>" in why[1] and "nowhere" in why[1]
