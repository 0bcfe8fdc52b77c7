"""Notifications: a task's or a batch's ``notify`` targets are told of its end, signed, durably,
retried with backoff, once, and only where the server's allow-list lets it reach."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from .flows import claim, eventually, finish, register, spec, submit
from .harness import BIN, Server, Template, listening_socket, manage, serve, wait_until_up
from .receivers import receiver, smtp_server

ALLOW = {"KOLEJKA_NOTIFY_ALLOW": "127.0.0.1"}
# Deliveries left to `kolejka-server deliver`, which the test runs: nothing is sent behind its back.
BY_HAND = {**ALLOW, "KOLEJKA_DELIVER_IN_SERVER": "false"}


def hook(url: str, **fields: object) -> dict[str, object]:
    return {"webhook": url, **fields}


def deliveries(api, key: str, what: str = "tasks") -> list[dict]:
    answer = api.get(f"{what}/{key}/deliveries/")
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def run_task(server: Server, node: str = "n1", **fields: object) -> dict:
    """Submit a task as alice, and finish it as fred's node."""
    alice, fred = server.api("alice"), server.api("fred")
    task = submit(alice, **fields)
    register(fred, node)
    finish(fred, claim(fred, node)["lease"]["id"])
    return task


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_it_signs_a_webhook_over_its_exact_body(notifying: Server):
    alice = notifying.api("alice")
    with receiver() as hooked:
        task = run_task(notifying, id="job-1", notify=[hook(hooked.url)])
        (call,) = eventually(lambda: hooked.calls, what="the webhook")
    secret = alice.get("auth/webhook-secret/").json()["secret"]
    expected = "sha256=" + hmac.new(secret.encode(), call.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(call.headers["X-Kolejka-Signature"], expected)
    body = call.json
    assert body["event"] == "done" and body["delivery"] == call.headers["X-Kolejka-Delivery"]
    assert body["task"]["key"] == task["key"] and body["task"]["id"] == "job-1"
    assert body["task"]["verdict"] == "OK" and call.headers["X-Kolejka-Event"] == "done"
    assert call.headers["X-Kolejka-Timestamp"].isdigit()
    (logged,) = eventually(
        lambda: [d for d in deliveries(alice, task["key"]) if d["delivered"]], what="the log"
    )
    assert logged["id"] == body["delivery"] and logged["attempts"] == 1
    assert logged["last_status"] == 204 and logged["next_try"] is None


def test_it_signs_with_a_new_secret_once_rotated(notifying: Server):
    alice = notifying.api("alice")
    old = alice.get("auth/webhook-secret/").json()["secret"]
    assert alice.get("auth/webhook-secret/").json()["secret"] == old
    new = alice.post("auth/webhook-secret/").json()["secret"]
    assert new != old and alice.get("auth/webhook-secret/").json()["secret"] == new
    with receiver() as hooked:
        run_task(notifying, notify=[hook(hooked.url)])
        (call,) = eventually(lambda: hooked.calls, what="the webhook")
    signed = "sha256=" + hmac.new(new.encode(), call.body, hashlib.sha256).hexdigest()
    assert call.headers["X-Kolejka-Signature"] == signed


@pytest.fixture
def retrying(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    with serve(
        templates["sqlite"],
        tmp_path / "data",
        **BY_HAND,
        KOLEJKA_NOTIFY_RETRY_DELAY="1s",
        KOLEJKA_NOTIFY_TIMEOUT="1s",
    ) as running:
        yield running


def test_it_retries_a_failing_receiver_with_growing_delays(retrying: Server):
    alice = retrying.api("alice")
    with receiver(500, "hang") as hooked:
        task = run_task(retrying, notify=[hook(hooked.url)])

        def attempted(count: int) -> dict:
            retrying.manage("deliver", "--burst")
            (found,) = deliveries(alice, task["key"])
            return found if found["attempts"] == count and found["tried"] else {}

        first = eventually(lambda: attempted(1), what="the first attempt")
        assert first["last_status"] == 500 and first["delivered"] is None
        assert when(first["next_try"]) - when(first["tried"]) == timedelta(seconds=1)
        second = eventually(lambda: attempted(2), what="the second attempt")
        assert second["last_status"] is None and "timed out" in second["last_error"]
        assert when(second["next_try"]) - when(second["tried"]) == timedelta(seconds=2)
        third = eventually(lambda: attempted(3), what="the third attempt")
    assert third["delivered"] and third["last_status"] == 204 and third["next_try"] is None
    assert len(hooked.calls) == 3
    assert len({call.headers["X-Kolejka-Delivery"] for call in hooked.calls}) == 1


def test_it_gives_a_delivery_up_after_its_attempts(templates, tmp_path: Path):
    with (
        serve(
            templates["sqlite"], tmp_path / "data", **BY_HAND, KOLEJKA_NOTIFY_ATTEMPTS="1"
        ) as server,
        receiver(503) as hooked,
    ):
        task = run_task(server, notify=[hook(hooked.url)])
        server.manage("deliver", "--burst")
        (found,) = deliveries(server.api("alice"), task["key"])
    assert found["gave_up"] and found["next_try"] is None and found["last_status"] == 503


@contextmanager
def restarted(server: Server, **settings: str) -> Iterator[Server]:
    """A second server process on `server`'s data and database."""
    env = {**server.env, **settings}
    sock = listening_socket()
    log = server.data / "restarted.log"
    with open(log, "wb") as output:
        command = [str(BIN / "kolejka-server"), "serve", "--bind", f"fd://{sock.fileno()}"]
        process = subprocess.Popen(
            command, env=env, pass_fds=(sock.fileno(),), stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    try:
        wait_until_up(url, process, log)
        yield Server(server.backend, server.data, env, url, server.tokens)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_it_delivers_after_the_server_was_killed(templates, backend: str, tmp_path: Path):
    with receiver() as hooked, serve(templates[backend], tmp_path / "data", **BY_HAND) as server:
        task = run_task(server, notify=[hook(hooked.url)])
        assert server.pid is not None
        os.killpg(server.pid, signal.SIGKILL)
        with restarted(server, KOLEJKA_DELIVER_IN_SERVER="true") as again:
            # A foreman calling in runs the housekeeping, which sends what is due.
            claim(again.api("fred"), "n1")
            (call,) = eventually(lambda: hooked.calls, what="the delivery after the restart")
    assert call.json["task"]["key"] == task["key"] and call.json["event"] == "done"


def test_it_delivers_once_when_two_deliverers_race(templates, backend: str, tmp_path: Path):
    tasks = 30
    # The first two calls wait for each other: each racer had deliveries of its own at once.
    with (
        receiver(together=2) as hooked,
        serve(templates[backend], tmp_path / "data", **BY_HAND) as server,
    ):
        alice, fred = server.api("alice"), server.api("fred")
        body = {"tasks": [{"task": spec(notify=[hook(hooked.url)])}] * tasks}
        assert alice.post("tasks/batch/", json=body).status_code == 201
        register(fred, "n1", slots=tasks)
        for _ in range(tasks):
            finish(fred, claim(fred, "n1", free={"cpus": 64, "memory": "64G"})["lease"]["id"])
        barrier = threading.Barrier(2)
        done: list[subprocess.CompletedProcess[str]] = []

        def deliverer() -> None:
            barrier.wait()
            done.append(server.manage("deliver", "--burst", "--json"))

        racers = [threading.Thread(target=deliverer) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
    ids = [call.headers["X-Kolejka-Delivery"] for call in hooked.calls]
    assert len(ids) == tasks and len(set(ids)) == tasks
    assert not hooked.apart, "one deliverer claimed everything: the two did not race"
    assert sum(json.loads(run.stdout)["attempts"] for run in done) == tasks


def test_it_refuses_a_loopback_target_without_an_allow_list(server: Server):
    alice = server.api("alice")
    for fields, where in [
        ({"notify": [hook("http://127.0.0.1:9/hook")]}, "task.notify[0].webhook"),
        ({"callback_url": "http://127.0.0.1:9/done"}, "task.callback_url"),
        ({"notify": [hook("http://[::1]:9/")]}, "task.notify[0].webhook"),
    ]:
        answer = alice.post("tasks/", json={"task": spec(**fields)})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == where and "KOLEJKA_NOTIFY_ALLOW" in answer.text
    assert alice.get("tasks/").json()["results"] == []


def test_it_refuses_a_private_address_the_allow_list_does_not_name(notifying: Server):
    alice = notifying.api("alice")
    for url in ["http://10.1.2.3/", "http://169.254.169.254/latest", "http://192.168.0.1:8080/"]:
        answer = alice.post("tasks/", json={"task": spec(notify=[{"webhook": url}])})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "task.notify[0].webhook"
    batch = alice.post(
        "tasks/batch/", json={"tasks": [{"task": spec()}], "notify": [hook("http://10.0.0.1/")]}
    )
    assert batch.status_code == 400 and batch.json()["field"] == "notify[0].webhook", batch.text
    assert alice.get("tasks/").json()["results"] == []


def test_it_does_not_follow_a_redirect(notifying: Server):
    alice = notifying.api("alice")
    with receiver() as elsewhere, receiver(("redirect", "")) as hooked:
        hooked.answers = [("redirect", elsewhere.url)]
        task = run_task(notifying, notify=[hook(hooked.url)])
        eventually(lambda: deliveries(alice, task["key"])[0]["last_status"], what="an attempt")
    (found,) = deliveries(alice, task["key"])
    assert found["last_status"] == 302 and "not followed" in found["last_error"]
    assert not found["delivered"] and elsewhere.calls == []


def finished_batch(server: Server, url: str) -> dict:
    """A batch of three told of its completion at `url`: two done OK, one failed, at once."""
    alice = server.api("alice")
    body = {"tasks": [{"task": spec()}] * 3, "notify": [hook(url, events=["complete"])]}
    batch = alice.post("tasks/batch/", json=body)
    assert batch.status_code == 201, batch.text
    foremen = [server.api("fred"), server.api("gina"), server.api("fred")]
    for index, foreman in enumerate(foremen):
        register(foreman, f"n{index}")
    leases = [claim(foreman, f"n{i}")["lease"]["id"] for i, foreman in enumerate(foremen)]
    barrier = threading.Barrier(3)

    def end(index: int) -> None:
        barrier.wait()
        if index == 2:
            failed = {"error": "disk full", "retry": False}
            assert foremen[index].post(f"leases/{leases[index]}/fail/", json=failed).ok
        else:
            finish(foremen[index], leases[index])

    enders = [threading.Thread(target=end, args=(index,)) for index in range(3)]
    for ender in enders:
        ender.start()
    for ender in enders:
        ender.join()
    return dict(batch.json())


def test_it_tells_of_a_batch_completion_once_with_counts(templates, backend: str, tmp_path):
    with receiver() as hooked, serve(templates[backend], tmp_path / "data", **ALLOW) as server:
        batch = finished_batch(server, hooked.url)
        (call,) = eventually(lambda: hooked.calls, what="the completion")
        server.manage("deliver", "--burst")
        log = deliveries(server.api("alice"), batch["batch"], "batches")
    told = call.json
    assert told["event"] == "complete" and told["batch"]["key"] == batch["batch"]
    assert told["batch"]["total"] == 3
    assert told["batch"]["states"]["done"] == 2 and told["batch"]["states"]["failed"] == 1
    assert told["batch"]["verdicts"] == {"OK": 2}
    assert len(hooked.calls) == 1 and [d["event"] for d in log] == ["complete"]


def test_it_sends_a_slack_message_a_slack_webhook_takes(notifying: Server):
    with receiver() as hooked:
        task = run_task(notifying, notify=[hook(hooked.url, format="slack")])
        (call,) = eventually(lambda: hooked.calls, what="the message")
    message = call.json
    assert set(message) == {"text", "blocks"} and task["key"] in message["text"]
    assert [block["type"] for block in message["blocks"]] == ["section", "context"]
    assert message["blocks"][0]["text"]["type"] == "mrkdwn"
    assert all(element["type"] == "mrkdwn" for element in message["blocks"][1]["elements"])


def test_it_tells_of_a_cancelled_task(notifying: Server):
    alice = notifying.api("alice")
    with receiver() as hooked, receiver() as only_done:
        entries = [hook(hooked.url), hook(only_done.url, events=["done"])]
        task = submit(alice, notify=entries)
        assert alice.post(f"tasks/{task['key']}/cancel/").status_code == 200
        (call,) = eventually(lambda: hooked.calls, what="the cancellation")
        notifying.manage("deliver", "--burst")
        assert only_done.calls == []
    assert call.json["event"] == "cancelled" and call.json["task"]["state"] == "cancelled"
    assert [d["event"] for d in deliveries(alice, task["key"])] == ["cancelled"]


def test_it_mails_through_the_smtp_server(templates, tmp_path: Path):
    with smtp_server() as (port, messages):
        mail = {"KOLEJKA_EMAIL_HOST": "127.0.0.1", "KOLEJKA_EMAIL_PORT": str(port)}
        settings = {**mail, "KOLEJKA_EMAIL_FROM": "grid@example.test"}
        with serve(templates["sqlite"], tmp_path / "data", **settings) as server:
            task = run_task(server, notify=[{"email": "alice@example.test"}])
            (message,) = eventually(lambda: list(messages), what="the e-mail")
            (logged,) = deliveries(server.api("alice"), task["key"])
    assert message["X-Envelope-To"] == "alice@example.test"
    assert message["From"] == "grid@example.test" and task["key"] in message["Subject"]
    assert message["X-Kolejka-Delivery"] == logged["id"]
    assert "verdict: OK" in message.get_payload()


def test_it_refuses_an_e_mail_target_without_a_mail_server(server: Server):
    alice = server.api("alice")
    answer = alice.post("tasks/", json={"task": spec(notify=[{"email": "a@example.test"}])})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "task.notify[0].email" and "KOLEJKA_EMAIL_HOST" in answer.text


def test_it_shows_the_delivery_log_to_the_owner_and_inspectors_only(notifying: Server):
    with receiver() as hooked:
        task = run_task(notifying, notify=[hook(hooked.url)])
        eventually(lambda: hooked.calls, what="the webhook")
    assert len(deliveries(notifying.api("ivan"), task["key"])) == 1
    assert notifying.api("bob").get(f"tasks/{task['key']}/deliveries/").status_code == 404


DIE_TWICE = """
from datetime import timedelta
from django.utils import timezone
from kolejka.server.grid import deliver
now = timezone.now()
first = deliver.claim(now)
# The process that claimed it died: nothing recorded. Once the claim lapses it is due again.
again = deliver.claim(now + deliver.lease() + timedelta(seconds=1))
print(len(first), len(again))
"""


def test_it_gives_up_a_delivery_whose_last_attempt_died(templates, tmp_path: Path):
    settings = {**BY_HAND, "KOLEJKA_NOTIFY_ATTEMPTS": "1"}
    with serve(templates["sqlite"], tmp_path / "data", **settings) as server:
        task = run_task(server, notify=[hook("http://127.0.0.1:9/")])
        claimed = server.manage("shell", "-c", DIE_TWICE).stdout.splitlines()[-1].split()
        (found,) = deliveries(server.api("alice"), task["key"])
    assert claimed == ["1", "0"]
    assert found["gave_up"] and found["next_try"] is None and "died" in found["last_error"]


def test_it_checks_the_target_again_when_it_delivers(templates, tmp_path: Path):
    with receiver() as hooked, serve(templates["sqlite"], tmp_path / "data", **BY_HAND) as server:
        task = run_task(server, notify=[hook(hooked.url)])
        # The operator took loopback off the allow-list after the task was submitted.
        strict = {key: value for key, value in server.env.items() if key != "KOLEJKA_NOTIFY_ALLOW"}
        manage(strict, "deliver", "--burst")
        (found,) = deliveries(server.api("alice"), task["key"])
    assert hooked.calls == [] and not found["delivered"]
    assert found["last_error"].startswith("refused: 127.0.0.1 resolves to 127.0.0.1")


def test_it_tells_of_each_task_and_the_batch_when_a_batch_is_cancelled(notifying: Server):
    alice = notifying.api("alice")
    with receiver() as hooked:
        tasks = [{"task": spec(notify=[hook(hooked.url)])}] * 3
        batch = alice.post("tasks/batch/", json={"tasks": tasks, "notify": [hook(hooked.url)]})
        assert batch.status_code == 201, batch.text
        key = batch.json()["batch"]
        assert alice.post(f"batches/{key}/cancel/").json()["changed"] == 3
        eventually(lambda: len(hooked.calls) >= 4, what="four notifications")
        notifying.manage("deliver", "--burst")
    events = sorted(body["event"] for body in hooked.bodies())
    assert events == ["cancelled", "cancelled", "cancelled", "complete"]
    (complete,) = [body for body in hooked.bodies() if body["event"] == "complete"]
    assert complete["batch"]["states"]["cancelled"] == 3 and complete["batch"]["verdicts"] == {}


def test_it_refuses_notifications_where_the_server_must_not_reach_out(templates, tmp_path: Path):
    with serve(templates["sqlite"], tmp_path / "data", KOLEJKA_CALLBACKS="false") as server:
        alice = server.api("alice")
        answer = alice.post("tasks/", json={"task": spec(notify=[hook("http://192.0.2.1/")])})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "task.notify[0]" and "sends no" in answer.text
        # A callback_url is taken, as it always was, and not called.
        task = run_task(server, callback_url="http://192.0.2.1/done")
        assert deliveries(alice, task["key"]) == []
