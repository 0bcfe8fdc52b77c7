"""Claim latency with 100 and with 100 000 tasks waiting for dependencies (p50/p99) in the same
run, and their ratio: waiting tasks are outside the claim's index, so it should be about 1.
On SQLite and PostgreSQL under the production server. Prints JSON.

    .venv/bin/python bench/blocked_claims.py [--backend sqlite|postgres] [--blocked N]
"""

from __future__ import annotations

import argparse
import json

from _servers import BACKENDS, Server, servers
from claim_latency import TASK, claim_latencies, summary

NOWHERE = {"task": {**TASK["task"], "requires": ["nowhere"]}}  # no node takes it: never ends


def block(server: Server, root: str, count: int) -> None:
    """`count` of alice's tasks waiting for `root`, which never runs."""
    alice = server.api("alice")
    while count:
        size = min(count, 1000)
        rows = [{**TASK, "after": [root]}] * size
        answer = alice.post("tasks/batch/", json={"tasks": rows})
        assert answer.status_code == 201, answer.text
        count -= size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--blocked", type=int, default=100_000, help="the larger count")
    parser.add_argument("--samples", type=int, default=300, help="claims timed per count")
    options = parser.parse_args()
    backends = tuple(options.backend or BACKENDS)
    figures: dict[str, object] = {}
    with servers(backends) as running:
        for backend, server in running.items():
            alice, bob = server.api("alice"), server.api("bob")
            root = alice.post("tasks/", json=NOWHERE).json()["key"]
            for api in (alice, bob):  # claimable work of two owners, fair share has work
                answer = api.post("tasks/batch/", json={"tasks": [TASK] * 100})
                assert answer.status_code == 201, answer.text
            block(server, root, 100)
            few = claim_latencies(server, "few", options.samples)
            block(server, root, options.blocked - 100)
            stats = alice.get("queue/stats/").json()["states"]
            assert stats["waiting"] == options.blocked, stats
            many = claim_latencies(server, "many", options.samples)
            figures[backend] = {
                "claim_with_100_blocked": summary(few),
                f"claim_with_{options.blocked}_blocked": summary(many),
                "ratio_p50": round(summary(many)["p50_ms"] / summary(few)["p50_ms"], 2),
                "ratio_p99": round(summary(many)["p99_ms"] / summary(few)["p99_ms"], 2),
            }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
