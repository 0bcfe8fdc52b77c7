"""The Django admin moves tasks only through the transitions the API uses: a task's state is
read-only there, and its actions (requeue, cancel, rejudge; drain for nodes) keep the queue's
bookkeeping right, so the owner's queue never stalls."""

from __future__ import annotations

import re

import requests

from .flows import claim, finish, register, submit
from .harness import PASSWORD, Server

QUEUED = (
    "from kolejka.server.grid.models import Task; "
    "print(Task.objects.filter(owner__username='alice', state='queued').count())"
)


class Admin:
    """ada in the Django admin, over HTTP like a browser."""

    def __init__(self, server: Server) -> None:
        self.url = server.url + "/admin/"
        self.session = requests.Session()
        self.session.get(self.url + "login/", timeout=30)
        answer = self.post("login/", {"username": "ada", "password": PASSWORD, "next": "/admin/"})
        assert answer.url.rstrip("/").endswith("/admin"), answer.text[:500]

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        token = self.session.cookies["csrftoken"]
        headers = {"Referer": self.url}
        data = {**data, "csrfmiddlewaretoken": token}
        return self.session.post(self.url + path, data=data, headers=headers, timeout=30)

    def pk(self, model: str, search: str) -> str:
        page = self.session.get(f"{self.url}kolejka/{model}/?q={search}", timeout=30).text
        found = re.search(rf"/admin/kolejka/{model}/(\d+)/change/", page)
        assert found, page[:1000]
        return found.group(1)

    def act(self, model: str, action: str, pk: str) -> str:
        answer = self.post(f"kolejka/{model}/", {"action": action, "_selected_action": pk})
        assert answer.status_code == 200, answer.text[:500]
        return answer.text


def queued(server: Server) -> int:
    return int(server.manage("shell", "-c", QUEUED).stdout.split()[-1])


def test_it_keeps_the_state_read_only_and_moves_tasks_through_the_transitions(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    first, second = submit(alice), submit(alice)
    register(fred, "n1")
    admin = Admin(server)
    pk = admin.pk("task", first["key"])
    form = admin.session.get(f"{admin.url}kolejka/task/{pk}/change/", timeout=30).text
    assert not re.search(r'<(select|input|textarea)[^>]*name="state"', form)
    assert re.search(r'<div class="readonly">\s*[Qq]ueued', form), form[:3000]
    admin.post(f"kolejka/task/{pk}/change/", {"state": "done", "_save": "Save"})
    assert alice.get(f"tasks/{first['key']}/").json()["state"] == "queued"

    assert "1 task(s) cancelled" in admin.act("task", "cancel", pk)
    assert alice.get(f"tasks/{first['key']}/").json()["state"] == "cancelled"
    assert queued(server) == 1
    # The queue goes on: the other task is claimed, done, then rejudged from the start.
    lease = claim(fred, "n1")
    assert lease["task"]["key"] == second["key"]
    finish(fred, lease["lease"]["id"])
    other = admin.pk("task", second["key"])
    assert "refused" not in admin.act("task", "rejudge", other)
    rejudged = alice.get(f"tasks/{second['key']}/").json()
    assert rejudged["state"] == "queued" and rejudged["result"] is None
    assert queued(server) == 1
    # Requeue: a held task is taken back from its node, whose next heartbeat is refused.
    held = claim(fred, "n1")
    assert held["task"]["key"] == second["key"]
    admin.act("task", "requeue", other)
    assert alice.get(f"tasks/{second['key']}/").json()["state"] == "queued"
    lost = fred.post(f"leases/{held['lease']['id']}/heartbeat/", json={})
    assert lost.status_code == 409 and lost.json()["code"] == "lease_lost"
    assert queued(server) == 1
    # A transition that does not apply is refused with a message, and changes nothing.
    assert f"{second['key']}: only finished tasks" in admin.act("task", "rejudge", other)
    assert queued(server) == 1


def test_it_drains_a_node_and_deletes_a_task_through_the_rules(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice)
    register(fred, "n1")
    admin = Admin(server)
    admin.act("node", "drain", admin.pk("node", "n1"))
    assert claim(fred, "n1") == {"lease": None, "task": None, "claimed": [], "drain": True}
    admin.act("node", "undrain", admin.pk("node", "n1"))
    held = claim(fred, "n1")
    assert held["task"]["key"] == task["key"]
    pk = admin.pk("task", task["key"])
    admin.post(f"kolejka/task/{pk}/delete/", {"post": "yes"})
    assert alice.get(f"tasks/{task['key']}/").status_code == 404
    beat = fred.post(f"leases/{held['lease']['id']}/heartbeat/", json={})
    assert beat.status_code == 200 and beat.json()["cancel"] is True
    assert queued(server) == 0
