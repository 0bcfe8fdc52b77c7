"""docs/api.md is checked against the schema the server serves: every operation is documented,
and the document names no request the server does not have (the legacy API's too)."""

from __future__ import annotations

import re
from pathlib import Path

from .harness import Server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# An API request (`GET /api/v1/tasks/` → "tasks/") or one of the legacy API (`GET /login/`).
REQUEST = re.compile(
    r"`(GET|POST|PUT|DELETE|HEAD) (?:/api/v1/([^`?\s]*)|(/(?:login|logout|settings|blob|task)/"
    r"[^`?\s]*))"
)


def served(server: Server) -> set[tuple[str, str]]:
    answer = server.api(None).get("schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert answer.status_code == 200, answer.text
    return {
        (method.upper(), path.removeprefix("/api/v1/"))
        for path, operations in answer.json()["paths"].items()
        for method in operations
    }


def test_it_documents_every_operation_the_server_serves_and_no_other(shared: Server):
    operations = served(shared)
    found = REQUEST.findall(DOCS.read_text())
    documented = {(method, v1 or legacy) for method, v1, legacy in found}
    # HEAD is served wherever GET is (the schema lists GET only).
    documented = {
        ("GET", path) if method == "HEAD" else (method, path) for method, path in documented
    }
    assert operations - documented == set(), "served but not in docs/api.md"
    assert documented - operations == set(), "in docs/api.md but not served"
