"""Who may do what: every endpoint, called by every kind of caller, each answer asserted.

The callers: alice, the client whose objects they are; bob, another client; fred, the foreman
whose node holds the lease; gina, a foreman whose node does not; ivan, an inspector; ada, an
admin; an anonymous caller; dora, a disabled user; rita, whose token was revoked. A refused
change leaves its object as it was. The table is the one in docs/api.md ("Who may call what").
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from .flows import claim, finish, register, spec, submit, upload
from .harness import PASSWORD, Server, Template, serve

CALLERS = ("alice", "bob", "fred", "gina", "ivan", "ada", None, "dora", "rita")
SIGNED_OUT = {None: 401, "dora": 401, "rita": 401}
UNCLAIMABLE = {"requires": ["nowhere"]}  # tasks no node takes: the queue stays predictable
FREE = {"cpus": 64, "memory": "64G"}  # what n1 says it has free
# n1's size: every world leaves a task leased there, which the server counts against what n1
# says it has free (a claim never passes what the node's open leases leave).
N1 = {"cpus": 100_000, "memory": "100T"}
YEARLY = {"cron": "0 0 1 1 *", "task": spec(**UNCLAIMABLE)}  # no tick while the tests run


@dataclass
class World:
    """One of each object, fresh: alice's input blob, her task fred holds under a lease, a
    done, a cancelled and a queued task, a batch, an open batch of one task, a schedule, and
    fred's spare node that holds nothing."""

    blob: str
    leased: str
    lease: str
    done: str
    cancelled: str
    queued: str
    batch: str
    open_batch: str
    schedule: str
    spare: str


def make_world(server: Server) -> World:
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1", capacity=N1, slots=10_000)
    blob = upload(alice, os.urandom(16))
    leased = submit(alice, files={"in": {"reference": blob}})["key"]
    got = claim(fred, "n1", free=FREE)
    assert got["task"]["key"] == leased, "another task was claimable"
    done = submit(alice)["key"]
    finished = claim(fred, "n1", free=FREE)
    assert finished["task"]["key"] == done
    finish(fred, finished["lease"]["id"])
    cancelled = submit(alice, **UNCLAIMABLE)["key"]
    assert alice.post(f"tasks/{cancelled}/cancel/").status_code == 200
    queued = submit(alice, **UNCLAIMABLE)["key"]
    batch = alice.post("tasks/batch/", json={"tasks": [{"task": spec(**UNCLAIMABLE)}]})
    assert batch.status_code == 201, batch.text
    opened = alice.post("batches/", json={}).json()["batch"]
    added = alice.post(f"batches/{opened}/tasks/", json=page(0))
    assert added.status_code == 201, added.text
    schedule = alice.post("schedules/", json=YEARLY)
    assert schedule.status_code == 201, schedule.text
    return World(
        blob,
        leased,
        got["lease"]["id"],
        done,
        cancelled,
        queued,
        batch.json()["batch"],
        opened,
        schedule.json()["key"],
        register(fred, f"spare-{os.urandom(4).hex()}")["name"],
    )


def page(start: int) -> dict[str, Any]:
    return {"start": start, "tasks": [{"task": spec(**UNCLAIMABLE)}]}


@dataclass
class Row:
    method: str
    path: Callable[[World], str]
    expect: dict[str | None, int]
    body: Callable[[World, str | None], dict[str, Any]] | None = None
    raw: bool = False  # the body is a blob's bytes
    changes: bool = False  # a fresh world for each caller
    # The task a refused call must leave in its state: (its key, the state).
    keeps: Callable[[World], tuple[str, str]] | None = None
    signed_out: dict[str | None, int] = field(default_factory=lambda: dict(SIGNED_OUT))
    # The legacy API (the path is from the server's root): signed in with a session, as the
    # original client does (`legacy_session`); `form`: the body is a form.
    legacy: bool = False
    form: bool = False

    def status(self, caller: str | None) -> int:
        return {**self.signed_out, **self.expect}[caller]


def each(status: int) -> dict[str | None, int]:
    return dict.fromkeys(("alice", "bob", "fred", "gina", "ivan", "ada"), status)


def tasks_of(owner: int, other: int, foreman: int, inspector: int, admin: int):
    return {
        "alice": owner,
        "bob": other,
        "fred": foreman,
        "gina": foreman,
        "ivan": inspector,
        "ada": admin,
    }


def lease_row(holder: int) -> dict[str | None, int]:
    return {"alice": 403, "bob": 403, "fred": holder, "gina": 404, "ivan": 403, "ada": 404}


def credentials(world: World, caller: str | None) -> dict[str, Any]:
    return {"username": caller or "alice", "password": PASSWORD}


# Through the legacy API, signing out is the session's: rita's revoked token does not matter,
# she signs in with her password and is another client; dora cannot sign in.
LEGACY_SIGNED_OUT = {None: 403, "dora": 403}


def legacy(
    method: str, path: Callable[[World], str], expect: dict[str | None, int], **options: Any
) -> Row:
    """A row of the legacy API; rita gets what bob gets."""
    options.setdefault("signed_out", dict(LEGACY_SIGNED_OUT))
    return Row(method, path, {**expect, "rita": expect["bob"]}, legacy=True, **options)


def legacy_session(server: Server, caller: str | None, sign_in: bool = True) -> requests.Session:
    """A session as the original client makes it: ``GET /logout/`` for the CSRF cookie, then
    ``POST /login/`` (when `sign_in` and there is a caller)."""
    session = requests.Session()
    assert session.get(server.url + "/logout/", timeout=60).status_code == 200
    if sign_in and caller is not None:
        session.post(
            server.url + "/login/",
            data=credentials(None, caller),  # type: ignore[arg-type]
            headers={"X-CSRFToken": session.cookies.get("csrftoken", "")},
            timeout=60,
        )
    return session


ROWS = {
    "me": Row("GET", lambda w: "auth/me/", each(200)),
    "webhook secret": Row(
        "GET", lambda w: "auth/webhook-secret/", tasks_of(200, 200, 403, 403, 200)
    ),
    "webhook secret rotate": Row(
        "POST", lambda w: "auth/webhook-secret/", tasks_of(200, 200, 403, 403, 200), changes=True
    ),
    "login": Row(
        "POST",
        lambda w: "auth/token/",
        {**each(200), None: 200},
        body=credentials,
    ),
    "blob read": Row(
        "GET",
        lambda w: f"blobs/{w.blob}/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 200, "ada": 200},
    ),
    "blob head": Row(
        "HEAD",
        lambda w: f"blobs/{w.blob}/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 200, "ada": 200},
    ),
    "blob upload": Row("POST", lambda w: "blobs/", {**each(201), "ivan": 403}, raw=True),
    "task list": Row("GET", lambda w: "tasks/", tasks_of(200, 200, 403, 200, 200)),
    "submit": Row(
        "POST",
        lambda w: "tasks/",
        tasks_of(201, 201, 403, 403, 201),
        body=lambda w, c: {"task": spec(**UNCLAIMABLE)},
    ),
    "batch submit": Row(
        "POST",
        lambda w: "tasks/batch/",
        tasks_of(201, 201, 403, 403, 201),
        body=lambda w, c: {"tasks": [{"task": spec(**UNCLAIMABLE)}]},
    ),
    "task read": Row("GET", lambda w: f"tasks/{w.queued}/", tasks_of(200, 404, 403, 200, 200)),
    "task delete": Row(
        "DELETE",
        lambda w: f"tasks/{w.queued}/",
        tasks_of(204, 404, 403, 403, 204),
        changes=True,
        keeps=lambda w: (w.queued, "queued"),
    ),
    "cancel": Row(
        "POST",
        lambda w: f"tasks/{w.queued}/cancel/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
        keeps=lambda w: (w.queued, "queued"),
    ),
    "retry": Row(
        "POST",
        lambda w: f"tasks/{w.cancelled}/retry/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
        keeps=lambda w: (w.cancelled, "cancelled"),
    ),
    "rejudge": Row(
        "POST",
        lambda w: f"tasks/{w.done}/rejudge/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
        keeps=lambda w: (w.done, "done"),
    ),
    "rejudge many": Row(
        "POST",
        lambda w: "tasks/rejudge/",
        tasks_of(200, 403, 403, 403, 200),
        # Only the tasks no node takes: the next world's claims stay as planned.
        body=lambda w, c: {"owner": "alice", "state": "cancelled", "tag": "nowhere"},
        changes=True,
        keeps=lambda w: (w.cancelled, "cancelled"),
    ),
    "rank": Row(
        "POST",
        lambda w: f"tasks/{w.queued}/rank/",
        tasks_of(200, 404, 403, 403, 200),
        body=lambda w, c: {"rank": 1},
    ),
    "batch rank": Row(
        "POST",
        lambda w: f"batches/{w.batch}/rank/",
        tasks_of(200, 404, 403, 403, 200),
        body=lambda w, c: {"rank": 1},
    ),
    "result": Row("GET", lambda w: f"tasks/{w.done}/result/", tasks_of(200, 404, 403, 200, 200)),
    "deliveries": Row(
        "GET", lambda w: f"tasks/{w.done}/deliveries/", tasks_of(200, 404, 403, 200, 200)
    ),
    "batch deliveries": Row(
        "GET", lambda w: f"batches/{w.batch}/deliveries/", tasks_of(200, 404, 403, 200, 200)
    ),
    "why": Row("GET", lambda w: f"tasks/{w.queued}/why/", tasks_of(200, 404, 403, 200, 200)),
    "task log": Row("GET", lambda w: f"tasks/{w.leased}/log/", tasks_of(200, 404, 403, 200, 200)),
    "batch": Row("GET", lambda w: f"batches/{w.batch}/", tasks_of(200, 404, 403, 200, 200)),
    "batch list": Row("GET", lambda w: "batches/", tasks_of(200, 200, 403, 200, 200)),
    "batch open": Row(
        "POST", lambda w: "batches/", tasks_of(201, 201, 403, 403, 201), body=lambda w, c: {}
    ),
    "batch page": Row(
        "POST",
        lambda w: f"batches/{w.open_batch}/tasks/",
        tasks_of(201, 404, 403, 403, 201),
        body=lambda w, c: page(1),
        changes=True,
    ),
    "batch seal": Row(
        "POST",
        lambda w: f"batches/{w.open_batch}/seal/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
    ),
    "batch rerun": Row(
        "POST",
        lambda w: f"batches/{w.batch}/rerun/",
        tasks_of(200, 404, 403, 403, 200),
        body=lambda w, c: {"which": "all"},
    ),
    "batch cancel": Row(
        "POST",
        lambda w: f"batches/{w.batch}/cancel/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
    ),
    "batch purge": Row(
        "DELETE",
        lambda w: f"batches/{w.batch}/",
        tasks_of(204, 404, 403, 403, 204),
        changes=True,
    ),
    "blob bundle": Row(
        "POST",
        lambda w: "blobs/bundle/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 200, "ada": 200},
        body=lambda w, c: {"references": [w.blob]},
    ),
    "schedule list": Row("GET", lambda w: "schedules/", tasks_of(200, 200, 403, 200, 200)),
    "schedule add": Row(
        "POST", lambda w: "schedules/", tasks_of(201, 201, 403, 403, 201), body=lambda w, c: YEARLY
    ),
    "schedule read": Row(
        "GET", lambda w: f"schedules/{w.schedule}/", tasks_of(200, 404, 403, 200, 200)
    ),
    "schedule pause": Row(
        "POST",
        lambda w: f"schedules/{w.schedule}/pause/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
    ),
    "schedule resume": Row(
        "POST",
        lambda w: f"schedules/{w.schedule}/resume/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
    ),
    "schedule remove": Row(
        "DELETE",
        lambda w: f"schedules/{w.schedule}/",
        tasks_of(204, 404, 403, 403, 204),
        changes=True,
    ),
    "node list": Row("GET", lambda w: "nodes/", each(200)),
    "node register": Row(
        "PUT",
        lambda w: "nodes/n1/",
        {"alice": 403, "bob": 403, "fred": 200, "gina": 409, "ivan": 403, "ada": 409},
        body=lambda w, c: {"slots": 10000, "capacity": {"cpus": 64, "memory": "64G"}},
    ),
    "drain": Row(
        "POST",
        lambda w: "nodes/n1/drain/",
        {**each(403), "ada": 200},
        body=lambda w, c: {"drain": False},
    ),
    "forget": Row(
        "DELETE",
        lambda w: f"nodes/{w.spare}/",
        {**each(403), "ada": 204},
        changes=True,
    ),
    "health": Row(
        "POST",
        lambda w: "nodes/n1/health/",
        {"alice": 403, "bob": 403, "fred": 200, "gina": 404, "ivan": 403, "ada": 404},
        body=lambda w, c: {"problems": []},
    ),
    "claim": Row(
        "POST",
        lambda w: "nodes/n1/claim/",
        lease_row(200),
        body=lambda w, c: {"wait": 0, "free": FREE},
    ),
    "claim several": Row(
        "POST",
        lambda w: "nodes/n1/claim/",
        lease_row(200),
        body=lambda w, c: {"wait": 0, "free": FREE, "max": 4},
    ),
    "heartbeat": Row(
        "POST",
        lambda w: f"leases/{w.lease}/heartbeat/",
        lease_row(200),
        body=lambda w, c: {},
        keeps=lambda w: (w.leased, "assigned"),
    ),
    "report result": Row(
        "POST",
        lambda w: f"leases/{w.lease}/result/",
        lease_row(201),
        body=lambda w, c: {"result": 0, "status": "OK"},
        changes=True,
        keeps=lambda w: (w.leased, "assigned"),
    ),
    "report result, claim the next": Row(
        "POST",
        lambda w: f"leases/{w.lease}/result/?claim=2",
        lease_row(201),
        body=lambda w, c: {"result": 0, "status": "OK"},
        changes=True,
        keeps=lambda w: (w.leased, "assigned"),
    ),
    "report failure": Row(
        "POST",
        lambda w: f"leases/{w.lease}/fail/",
        lease_row(200),
        body=lambda w, c: {"error": "docker is down", "retry": False},
        changes=True,
        keeps=lambda w: (w.leased, "assigned"),
    ),
    "log append": Row(
        "POST",
        lambda w: f"leases/{w.lease}/log/",
        lease_row(200),
        body=lambda w, c: {"stream": "stdout", "offset": 0, "data": "aGkK"},
        keeps=lambda w: (w.leased, "assigned"),
    ),
    "release": Row(
        "POST",
        lambda w: f"leases/{w.lease}/release/",
        lease_row(200),
        changes=True,
        keeps=lambda w: (w.leased, "assigned"),
    ),
    "image list": Row("GET", lambda w: "images/", each(200)),
    "image store": Row(
        "PUT",
        lambda w: "images/",
        {**each(403), "ada": 200},
        body=lambda w, c: {"name": "kolejka/matrix:1", "reference": w.blob},
    ),
    "queue stats": Row("GET", lambda w: "queue/stats/", each(200)),
    "schema": Row(
        "GET", lambda w: "schema/", each(200), signed_out={None: 200, "dora": 200, "rita": 200}
    ),
    "legacy settings": legacy("GET", lambda w: "settings/", each(200)),
    "legacy login": legacy(
        "POST",
        lambda w: "login/",
        each(200),
        body=credentials,
        form=True,
        signed_out={None: 200, "dora": 400},
    ),
    "legacy logout": legacy(
        "GET", lambda w: "logout/", each(200), signed_out={None: 200, "dora": 200}
    ),
    "legacy blob read": legacy(
        "GET",
        lambda w: f"blob/reference/{w.blob}/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 200, "ada": 200},
    ),
    "legacy blob head": legacy(
        "HEAD",
        lambda w: f"blob/reference/{w.blob}/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 200, "ada": 200},
    ),
    "legacy blob by hash": legacy(
        "GET",
        lambda w: f"blob/blob/{w.blob}/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 200, "ada": 200},
    ),
    "legacy blob known": legacy(
        "POST",
        lambda w: f"blob/blob/{w.blob}/",
        {"alice": 200, "bob": 404, "fred": 200, "gina": 404, "ivan": 403, "ada": 200},
    ),
    "legacy blob upload": legacy(
        "POST", lambda w: "blob/reference/", {**each(200), "ivan": 403}, raw=True
    ),
    "legacy submit": legacy(
        "POST",
        lambda w: "task/task/",
        tasks_of(200, 200, 403, 403, 200),
        body=lambda w, c: spec(**UNCLAIMABLE),
    ),
    "legacy task read": legacy(
        "GET", lambda w: f"task/task/{w.queued}/", tasks_of(200, 404, 403, 200, 200)
    ),
    "legacy task delete": legacy(
        "DELETE",
        lambda w: f"task/task/{w.queued}/",
        tasks_of(200, 404, 403, 403, 200),
        changes=True,
        keeps=lambda w: (w.queued, "queued"),
    ),
    "legacy result": legacy(
        "GET", lambda w: f"task/result/{w.done}/", tasks_of(200, 404, 403, 200, 200)
    ),
    # Last: it revokes the callers' tokens (each logs in again afterwards).
    "logout": Row("DELETE", lambda w: "auth/token/", each(204)),
}
CODES = {401: {"not_authenticated", "authentication_failed"}, 403: {"permission_denied"}}
CODES |= {404: {"not_found"}, 409: {"conflict"}}
# The legacy API answers a caller without a session 403, as the original did; a wrong password
# at its sign-in is 400.
LEGACY_CODES = {**CODES, 403: {"permission_denied", "not_authenticated"}, 400: {"invalid"}}


@pytest.fixture(scope="module")
def grid(templates: dict[str, Template], tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with serve(
        templates["sqlite"], tmp_path_factory.mktemp("matrix") / "data", KOLEJKA_LEASE_TTL="1h"
    ) as server:
        register(server.api("fred"), "n1", slots=10000)
        yield server


def call(server: Server, row: Row, world: World, caller: str | None):
    if row.legacy:
        return call_legacy(server, row, world, caller)
    api = server.api(caller)
    options: dict[str, Any] = {}
    if row.raw:
        options["data"] = os.urandom(32)
        options["headers"] = {"Content-Type": "application/octet-stream"}
    elif row.body is not None:
        options["json"] = row.body(world, caller)
    return api.request(row.method, row.path(world), **options)


def call_legacy(server: Server, row: Row, world: World, caller: str | None):
    """`row` as the original client sends it: no ``Content-Type`` but for forms, the CSRF
    cookie's token in ``X-CSRFToken``."""
    session = legacy_session(server, caller, sign_in=not row.form)
    options: dict[str, Any] = {
        "headers": {"X-CSRFToken": session.cookies.get("csrftoken", "")},
        "timeout": 120,
    }
    if row.raw:
        options["data"] = os.urandom(32)
    elif row.body is not None and row.form:
        options["data"] = row.body(world, caller)
    elif row.body is not None:
        options["data"] = json.dumps(row.body(world, caller))
    return session.request(row.method, f"{server.url}/{row.path(world)}", **options)


@pytest.mark.parametrize("name", list(ROWS))
def test_it_lets_each_caller_do_exactly_what_its_role_may(grid: Server, name: str):
    row = ROWS[name]
    shared = make_world(grid)
    seen: dict[str | None, int] = {}
    for caller in CALLERS:
        world = make_world(grid) if row.changes else shared
        answer = call(grid, row, world, caller)
        seen[caller] = answer.status_code
        expected = row.status(caller)
        assert answer.status_code == expected, (caller, answer.status_code, answer.text[:300])
        if answer.status_code >= 400 and row.method != "HEAD":
            codes = LEGACY_CODES if row.legacy else CODES
            assert answer.json()["code"] in codes[answer.status_code], (caller, answer.text)
            if row.legacy:
                assert answer.json()["status"] == "FAIL", (caller, answer.text)
            if row.keeps is not None:
                key, state = row.keeps(world)
                shown = grid.api("ada").get(f"tasks/{key}/").json()
                assert shown["state"] == state, (caller, "a refused call changed the task")
        if row.changes:
            # A released or rejudged task is queued again: out of the way of the next world's
            # claims (cancelling a task that is still done is refused, and changes nothing).
            for key in (world.leased, world.done):
                grid.api("ada").post(f"tasks/{key}/cancel/")
        if name == "logout" and answer.status_code == 204:
            again = grid.api(None).post("auth/token/", json=credentials(world, caller))
            grid.tokens[str(caller)] = again.json()["token"]
    assert set(seen) == set(CALLERS)


def test_it_refuses_legacy_changes_without_the_csrf_token(grid: Server):
    """The legacy API signs in with a cookie: a change must carry the CSRF cookie's token, or
    another site's page could make it in the user's name."""
    world = make_world(grid)
    session = legacy_session(grid, "alice")
    forged = session.delete(f"{grid.url}/task/task/{world.queued}/", timeout=60)
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"], forged.text
    assert grid.api("alice").get(f"tasks/{world.queued}/").json()["state"] == "queued"
    login = requests.Session()
    login.get(f"{grid.url}/logout/", timeout=60)
    refused = login.post(f"{grid.url}/login/", data=credentials(world, "alice"), timeout=60)
    assert refused.status_code == 403 and "sessionid" not in login.cookies, refused.text
