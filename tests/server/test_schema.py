"""schemathesis against the served OpenAPI schema, as each role: no 5xx for anything it
generates (valid and invalid), and every answer conforms to the schema."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .flows import claim, register, submit, upload
from .harness import BIN, Server, Template, serve

# Where a schema-valid request may still be refused: the schema cannot say "a blob that exists",
# the task format's units and names ("64X" is a string too), or the state of a lease. And the
# login and health: schemathesis' coverage phase sends NUL in its strings despite their `pattern`.
STATEFUL_RULES = "".join(
    f"""
[[operations]]
include-operation-id = "{operation}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"""
    for operation in (
        "tasks_create",
        "tasks_batch_create",
        "batches_create",
        "batches_tasks_create",
        "batches_seal_create",
        "batches_rerun_create",
        "batches_cancel_create",
        "batches_destroy",
        "blobs_bundle_create",
        "blobs_create",
        "images_update",
        "nodes_update",
        "nodes_claim_create",
        "nodes_drain_create",
        "leases_heartbeat_create",
        "leases_result_create",
        "leases_fail_create",
        "leases_release_create",
        "leases_log_create",
        "tasks_retry_create",
        "tasks_cancel_create",
        "tasks_rejudge_many",
        "auth_token_create",
        "nodes_health_create",
        "schedules_create",
    )
)


@pytest.fixture(scope="module")
def seeded(
    templates: dict[str, Template], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """A server holding one of each thing, and a schemathesis config naming them."""
    folder = tmp_path_factory.mktemp("schema")
    # Long-polls are cut to 1 s: schemathesis asks for waits up to 1e308 s.
    with serve(templates["sqlite"], folder / "data", KOLEJKA_MAX_WAIT="1s") as server:
        alice, fred, ada = server.api("alice"), server.api("fred"), server.api("ada")
        reference = upload(alice, b"seed")
        task = submit(alice, files={"in": {"reference": reference}})
        batch = alice.post("tasks/batch/", json={"tasks": [{"task": task["task"]}]}).json()
        register(fred, "n1")
        lease = claim(fred, "n1")["lease"]["id"]
        ada.put(
            "images/", json={"name": "kolejka/busybox:latest", "reference": upload(ada, b"img")}
        )
        config = folder / "schemathesis.toml"
        config.write_text(
            "[parameters]\n"
            f'"path.key" = "{task["key"]}"\n'
            f'"path.name" = "n1"\n'
            f'"path.lease_id" = "{lease}"\n'
            f'"path.reference" = "{reference}"\n'
            f'"query.batch" = "{batch["batch"]}"\n' + STATEFUL_RULES
        )
        yield server, config


@pytest.mark.parametrize("role", ["alice", "fred", "ivan", "ada", None])
def test_it_answers_every_generated_request_within_its_schema(seeded, role):
    server, config = seeded
    headers = ["-H", f"Authorization: Token {server.tokens[role]}"] if role else []
    done = subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", str(config), "run",
         f"{server.url}/api/v1/schema/", *headers, "--checks", "all", "--mode", "all",
         "--max-examples", "15", "--seed", "7", "--no-shrink", "--workers", "2",
         # Logging out would leave the rest of the run unauthenticated.
         "--exclude-operation-id", "auth_token_destroy"],
        capture_output=True, text=True, timeout=900,
        cwd=config.parent,  # schemathesis keeps its own files in the working folder
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = done.stdout.split("SUMMARY")[-1]
    generated = re.search(r"(\d+) generated", summary)
    assert generated and int(generated.group(1)) > 100 and not re.search(r"\d+ failed", summary)
