"""``/metrics``: Prometheus' text format for inspectors and admins, the database's figures and
every server worker's own counts summed."""

from __future__ import annotations

import os

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from .flows import claim, finish, register, submit, upload
from .harness import Server

NOWHERE = {"requires": ["nowhere"]}


def scrape(server: Server, user: str | None = "ivan") -> requests.Response:
    headers = {"Authorization": f"Token {server.tokens[user]}"} if user else {}
    # A new connection each time: gunicorn hands it to either of its workers.
    return requests.get(f"{server.url}/metrics", headers=headers, timeout=60)


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = scrape(server)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_it_lets_only_inspectors_and_admins_read_the_metrics(shared: Server):
    expected = {"alice": 403, "bob": 403, "fred": 403, "ivan": 200, "ada": 200, None: 401}
    expected |= {"dora": 401, "rita": 401}
    seen = {user: scrape(shared, user).status_code for user in expected}
    assert seen == expected
    assert scrape(shared, "alice").json()["code"] == "permission_denied"


def test_it_counts_tasks_nodes_blobs_waits_runs_and_verdicts_over_all_workers(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1")
    blob = upload(alice, os.urandom(1000))
    submit(alice, **NOWHERE)
    verdicts = ["OK"] * 7 + ["RUNTIME_ERROR"] * 5
    for status in verdicts:
        key = submit(alice, files={"in": {"reference": blob}})["key"]
        got = claim(server.api("fred"), "n1")  # a new connection: any worker
        assert got["task"]["key"] == key
        lease = got["lease"]["id"]
        beat = server.api("fred").post(f"leases/{lease}/heartbeat/", json={"running": True})
        assert beat.status_code == 200, beat.text
        finish(server.api("fred"), lease, status=status, result=0 if status == "OK" else 1)
    for _ in range(6):  # whichever worker answers, the same sums
        seen = samples(server)
        assert seen[("kolejka_tasks", (("state", "queued"),))] == 1
        assert seen[("kolejka_tasks", (("state", "done"),))] == 12
        assert seen[("kolejka_results_total", (("status", "OK"),))] == 7
        assert seen[("kolejka_results_total", (("status", "RUNTIME_ERROR"),))] == 5
        assert seen[("kolejka_queue_wait_seconds_count", ())] == 12
        assert seen[("kolejka_run_seconds_count", ())] == 12
        assert seen[("kolejka_claim_seconds_count", ())] >= 12
        assert seen[("kolejka_nodes", (("state", "up"),))] == 1
        assert seen[("kolejka_blob_store_bytes", ())] == 1000
    assert server.pid is not None
    workers = {str(child.pid) for child in psutil.Process(server.pid).children()}
    counted = {path.stem.rsplit("_", 1)[-1] for path in (server.data / "metrics").glob("*.db")}
    assert len(workers) == 2 and workers <= counted, (workers, counted)  # both counted some
