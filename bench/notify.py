"""Notifications: how soon a webhook reaches its receiver after the result that ends its task
(p50/p99, sent by the server's own delivery thread), and how many deliveries per second
``kolejka-server deliver --burst`` sends from a backlog, on SQLite or PostgreSQL. Prints JSON.

    .venv/bin/python bench/notify.py [--backend sqlite] [--samples 50] [--backlog 300]

The receiver is a threaded HTTP server of this process on loopback, answering 204 at once.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _servers import percentile

from tests.server.flows import claim, finish, register, spec
from tests.server.harness import Server, Template, serve


class Receiver:
    """Records when each delivery arrived, by its X-Kolejka-Delivery id's task key."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.changed:
                    receiver.arrived[body["task"]["key"]] = time.monotonic()
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait(self, key: str, deadline: float = 60) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.arrived, deadline):
                raise RuntimeError(f"no delivery for {key} in {deadline} s")
            return self.arrived[key]


def latency(server: Server, receiver: Receiver, samples: int) -> dict[str, float]:
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n1")
    waits = []
    for _ in range(samples):
        task = alice.post("tasks/", json={"task": spec(notify=[{"webhook": receiver.url}])})
        lease = claim(fred, "n1")["lease"]["id"]
        start = time.monotonic()
        finish(fred, lease)
        waits.append(receiver.wait(task.json()["key"]) - start)
    return {"p50_ms": percentile(waits, 0.5) * 1000, "p99_ms": percentile(waits, 0.99) * 1000}


def burst(server: Server, receiver: Receiver, backlog: int) -> dict[str, float]:
    alice, fred = server.api("alice"), server.api("fred")
    register(fred, "n2", slots=backlog)
    tasks = [{"task": spec(notify=[{"webhook": receiver.url}])}] * backlog
    for start in range(0, backlog, 500):
        answer = alice.post("tasks/batch/", json={"tasks": tasks[start : start + 500]})
        assert answer.status_code == 201, answer.text
    for _ in range(backlog):
        finish(fred, claim(fred, "n2", free={"cpus": 64, "memory": "64G"})["lease"]["id"])
    began = time.monotonic()
    server.manage("deliver", "--burst")
    took = time.monotonic() - began
    return {"deliveries": backlog, "seconds": took, "per_second": backlog / took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=300)
    args = parser.parse_args()
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as root:
        template = Template(args.backend, Path(root))
        try:
            allow = {"KOLEJKA_NOTIFY_ALLOW": "127.0.0.1"}
            with serve(template, Path(root) / "live", **allow) as server:
                figures = {"pickup": latency(server, receiver, args.samples)}
            by_hand = {**allow, "KOLEJKA_DELIVER_IN_SERVER": "false"}
            with serve(template, Path(root) / "burst", **by_hand) as server:
                figures["burst"] = burst(server, receiver, args.backlog)
        finally:
            template.close()
    print(json.dumps({"backend": args.backend, **figures}, indent=2))


if __name__ == "__main__":
    main()
