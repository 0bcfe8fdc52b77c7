"""The observer's client: the worker's side of the protocol (and a judge's, inside a task).

Standard library only (http.client over the unix socket), so the worker starts fast.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

from kolejka.common import KolejkaError, Limits

from .sessions import Reason, Report

# A report is read from counters at once: an observer that takes longer is not working.
REPORT_TIMEOUT = 5.0


class ObserverError(KolejkaError):
    """The observer refused a request or could not be reached; `status` is the HTTP status (0:
    no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class ObserverClient:
    """Requests to the observer at the unix socket `path`, one connection each."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(
        self,
        method: str,
        target: str,
        body: dict[str, Any] | None = None,
        secret: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request; return the JSON answer or raise `ObserverError` with its message
        (status 0 when no answer came within `timeout`, default the client's)."""
        connection = _UnixConnection(self.path, timeout or self.timeout)
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        data = json.dumps(body).encode() if body is not None and method != "GET" else None
        try:
            connection.request(method, target, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except OSError as error:
            raise ObserverError(0, f"observer at {self.path}: {error}") from error
        finally:
            connection.close()
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError:
            answer = {"error": raw[:200].decode(errors="replace")}
        if response.status >= 400:
            message = answer.get("error", response.reason)
            raise ObserverError(response.status, f"observer: {message}")
        if not isinstance(answer, dict):
            raise ObserverError(response.status, "observer: the answer is not a JSON object")
        return answer

    def info(self) -> dict[str, Any]:
        return self.request("GET", "/")

    def open(
        self,
        limits: Limits,
        *,
        cpuset: tuple[int, ...] | None = None,
        container: bool = False,
        socket_owner: int | None = None,
        parent: RemoteSession | None = None,
        deadline: float | None = None,
    ) -> RemoteSession:
        """Open a session (nested in `parent` if given) and return it. `deadline`
        (`time.monotonic()`) is when the observer kills it unless `set_deadline` moves it."""
        body: dict[str, Any] = {"limits": limits.to_dict(), "container": container}
        if deadline is not None:
            body["deadline"] = _from_now(deadline)
        if cpuset is not None:
            body["cpuset"] = list(cpuset)
        if socket_owner is not None:
            body["socket_owner"] = socket_owner
        if parent is not None:
            body["parent"] = {"id": parent.id, "secret": parent.secret}
        answer = self.request("POST", "/sessions", body)
        return RemoteSession(self, answer)


def _from_now(at: float) -> float:
    """Seconds from now to `at`: the observer counts on its own clock (the margin of the
    deadline covers the moment the request takes)."""
    return max(at - time.monotonic(), 0.0)


class RemoteSession:
    """A session at the observer: the same verbs as the in-process `Session`."""

    def __init__(self, client: ObserverClient, answer: dict[str, Any]) -> None:
        self.client = client
        self.id: str = answer["id"]
        self.secret: str = answer["secret"]
        self.cgroup_parent: str = answer["cgroup"]
        self.socket: str | None = answer.get("socket")
        self.limits = Limits.from_dict(answer.get("limits") or {})
        self._final: Report | None = None

    def _call(self, verb: str, body: dict[str, Any] | None = None) -> Report:
        answer = self.client.request(
            "POST", f"/sessions/{self.id}/{verb}", body or {}, secret=self.secret
        )
        return Report.from_dict(answer)

    def report(self) -> Report:
        if self._final is not None:
            return self._final
        timeout = min(self.client.timeout, REPORT_TIMEOUT)
        return Report.from_dict(
            self.client.request("GET", f"/sessions/{self.id}", secret=self.secret, timeout=timeout)
        )

    def attach(self) -> None:
        """Move the calling process into this session."""
        self.client.request("POST", f"/sessions/{self.id}/attach", {}, secret=self.secret)

    def kill(self, reason: Reason) -> None:
        self._call("kill", {"reason": str(reason)})

    def set_deadline(self, at: float | None) -> None:
        """Have the observer kill the session at `at` (`time.monotonic()`; `None`: never)."""
        self._call("deadline", {"deadline": None if at is None else _from_now(at)})

    def close(self) -> Report:
        """Close the session and return its final report. Idempotent."""
        if self._final is None:
            self._final = self._call("close")
        return self._final
