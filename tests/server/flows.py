"""Short steps the tests repeat: upload, submit, register a node, claim, report."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .harness import Api

T = TypeVar("T")


def upload(api: Api, content: bytes) -> str:
    answer = api.post("blobs/", data=content, headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["reference"] == hashlib.sha256(content).hexdigest()
    return str(answer.json()["reference"])


def spec(**fields: Any) -> dict[str, Any]:
    return {"image": "kolejka/busybox:latest", "args": ["true"], **fields}


def submit(api: Api, priority: int = 0, **fields: Any) -> dict[str, Any]:
    answer = api.post("tasks/", json={"task": spec(**fields), "priority": priority})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def register(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    body = {"capacity": {"cpus": 4, "memory": "8G", "workspace": "10G"}, "slots": 8, **fields}
    answer = api.put(f"nodes/{name}/", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def claim(api: Api, node: str, **body: Any) -> dict[str, Any]:
    answer = api.post(f"nodes/{node}/claim/", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def result(**fields: Any) -> dict[str, Any]:
    return {"result": 0, "status": "OK", **fields}


def finish(api: Api, lease: str, **fields: Any) -> dict[str, Any]:
    answer = api.post(f"leases/{lease}/result/", json=result(**fields))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def eventually(check: Callable[[], T | None], deadline: float = 60, what: str = "") -> T:
    """`check()` once it is truthy, trying for `deadline` seconds (the machine may be busy)."""
    end = time.monotonic() + deadline
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what or check}")
        time.sleep(0.05)
