"""The observer daemon: HTTP + JSON on unix sockets (the protocol is in docs/observer.md).

There is one main socket, for workers (root, or the group the operator names), and one socket per
top-level session that asks for it, owned by the task's uid and mounted into its container. A
connection through a session's socket acts only within that session: its peer (``SO_PEERCRED``)
must be a process of the session, it may read the session's own figures, open nested sessions in
it, and attach to, read, kill or close those nested sessions by their secrets. Another session's
id and secret get the same ``404`` as a wrong guess.

A top-level session is owned by the process that opened it (``SO_PEERCRED``): when that process
exits, the observer closes the session itself. Its deadline (the owner's lease, see
`Session.set_deadline`) is set and renewed through the main socket only.

Floods are bounded per socket: at most `MAX_CONNECTIONS` (main) or `MAX_SESSION_CONNECTIONS`
(a session's socket) connections are served at once (the rest are closed at once), a request must
arrive within `REQUEST_TIMEOUT` and be at most `MAX_BODY` bytes, and malformed requests get a 4xx.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import re
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolejka import __version__
from kolejka.common import KolejkaError, Limits, SpecError
from kolejka.common.limits import SESSION_LIMITS
from kolejka.common.units import parse_time

from . import legacy
from .cgroups import CgroupError, Hierarchy, group_of
from .owners import Owners
from .registry import Registry, TooMany, innermost, is_within
from .sessions import Reason, Session

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
MAX_SESSION_CONNECTIONS = 16
REQUEST_TIMEOUT = 5.0
MAX_BODY = 64 * 1024
OPEN_FIELDS = frozenset({"limits", "cpuset", "container", "parent", "socket_owner", "deadline"})
_PATH = re.compile(r"^/sessions/([0-9a-f]{1,64})(?:/(attach|kill|close|deadline))?$")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel."""
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


@dataclass
class Listener:
    """One listening socket. `scope` is the session whose socket it is (`None`: the main one)."""

    sock: socket.socket
    path: Path
    scope: Session | None
    limit: int
    active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(http.server.BaseHTTPRequestHandler):
    """One connection, one request (HTTP/1.0: the connection closes after the answer)."""

    timeout = REQUEST_TIMEOUT
    server_version = f"kolejka-observer/{__version__}"

    def __init__(self, conn: socket.socket, listener: Listener, observer: Observer) -> None:
        self.listener = listener
        self.peer = peer_credentials(conn)
        self.observer = observer
        super().__init__(conn, ("unix", 0), None)  # type: ignore[arg-type]  # serves now

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s", format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            body = self._body()  # also a GET's, so that the client can finish sending it
            status, answer = self.observer.route(self, method, self.path, body)
        except HttpError as error:
            status, answer = error.status, {"error": str(error)}
        except SpecError as error:
            status, answer = 400, {"error": str(error)}
        except TooMany as error:
            status, answer = 429, {"error": str(error)}
        except (CgroupError, KolejkaError) as error:
            log.warning("%s %s: %s", method, self.path, error)
            status, answer = 500, {"error": str(error)}
        except Exception as error:  # one bad request must not take the daemon down
            log.exception("%s %s failed", method, self.path)
            status, answer = 500, {"error": f"{type(error).__name__}: {error}"}
        self._answer(status, answer)

    def _body(self) -> dict[str, Any]:
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            raise HttpError(400, "Content-Length must be a number")
        length = int(length_text)
        if length > MAX_BODY:
            raise HttpError(413, f"a request body may have at most {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise HttpError(400, f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        return body

    def _answer(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def secret(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[7:] if value.startswith("Bearer ") else None


class Observer:
    """The daemon: sessions, their sockets and the HTTP routes. `serve_forever` until `stop`."""

    def __init__(
        self,
        socket_path: Path,
        *,
        hierarchy: Hierarchy | None = None,
        cgroup_base: str = "kolejka",
        sessions_dir: Path | None = None,
        group: int | None = None,
    ) -> None:
        self.hierarchy = hierarchy or Hierarchy.discover()
        self.registry = Registry(self.hierarchy, cgroup_base)
        self.socket_path = socket_path
        self.sessions_dir = sessions_dir or socket_path.parent / "sessions"
        self.group = group
        self._selector = selectors.DefaultSelector()
        self._listeners: dict[str, Listener] = {}  # by session id ("" = main)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.owners = Owners(self._orphaned)

    # -- sockets ------------------------------------------------------------------------------

    def start(self) -> None:
        """Make sure no other observer serves the socket, sweep what a dead one left, listen."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            if _answers(self.socket_path):
                raise KolejkaError(f"another observer is serving {self.socket_path}")
            self.socket_path.unlink()
        swept = self.registry.sweep()
        if swept:
            log.warning("removed %d groups left by a previous observer", len(swept))
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self.sessions_dir.chmod(0o711)
        for stale in self.sessions_dir.glob("*.sock"):
            stale.unlink()
        mode = 0o660 if self.group is not None else 0o600
        self._listen("", self.socket_path, None, MAX_CONNECTIONS, mode, 0, self.group or 0)

    def _listen(
        self,
        key: str,
        path: Path,
        scope: Session | None,
        limit: int,
        mode: int,
        uid: int,
        gid: int,
    ) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # never a moment when the socket is open to all
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        sock.listen(128)
        sock.setblocking(False)
        listener = Listener(sock, path, scope, limit)
        with self._lock:
            self._listeners[key] = listener
        self._selector.register(sock, selectors.EVENT_READ, listener)
        os.write(self._wake_w, b"x")

    def _unlisten(self, key: str) -> None:
        with self._lock:
            listener = self._listeners.pop(key, None)
        if listener is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(listener.sock)
        listener.sock.close()
        with contextlib.suppress(FileNotFoundError):
            listener.path.unlink()

    def serve_forever(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    continue
                self._accept(key.data)
        self._close()

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")

    def _close(self) -> None:
        self.owners.close()
        self.registry.close_all()
        for key in list(self._listeners):
            self._unlisten(key)
        self.registry.remove_base()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _accept(self, listener: Listener) -> None:
        try:
            conn, _ = listener.sock.accept()
        except (BlockingIOError, OSError):
            return
        with listener.lock:
            if listener.active >= listener.limit:
                conn.close()  # a flood: the newest are turned away, the server lives on
                return
            listener.active += 1
        threading.Thread(target=self._serve, args=(conn, listener), daemon=True).start()

    def _serve(self, conn: socket.socket, listener: Listener) -> None:
        try:
            conn.setblocking(True)
            Handler(conn, listener, self)
        except Exception as error:  # a broken connection is the peer's problem
            log.debug("connection failed: %s", error)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with listener.lock:
                listener.active -= 1

    # -- routes -------------------------------------------------------------------------------

    def route(
        self, handler: Handler, method: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        scope = handler.listener.scope
        if scope is not None:
            pid = handler.peer[0]
            group = group_of(pid, self.hierarchy)
            own = scope.cgroup.path
            if group is None or not (group == own or group.startswith(own + "/")):
                raise HttpError(403, "this socket serves only the processes of its session")
        if scope is not None and legacy.handles(method, path):
            return legacy.route(self, scope, handler.peer[0], path, body)
        if path == "/" and method == "GET":
            return 200, {
                "service": "kolejka-observer",
                "version": __version__,
                "cgroup": self.hierarchy.version,
            }
        if path == "/sessions" and method == "POST":
            return 201, self._open(handler, scope, body)
        match = _PATH.match(path)
        if match is None:
            raise HttpError(404, f"no such resource: {method} {path}")
        session_id, verb = match.group(1), match.group(2)
        if verb is None and method == "GET":
            if scope is not None and session_id == scope.id:
                return 200, scope.report().to_dict()
            session = self._find(session_id, handler.secret(), scope)
            if session is None:
                final = self.registry.final(session_id, handler.secret(), within=scope)
                if final is None:
                    raise HttpError(404, "no such session")
                return 200, final.to_dict()
            return 200, session.report().to_dict()
        if verb is None or method != "POST":
            raise HttpError(405, f"use {'GET' if verb is None else 'POST'} for {path}")
        return 200, self._act(handler, scope, session_id, verb, body)

    def _orphaned(self, session_id: str) -> None:
        """Close a top-level session whose owner exited."""
        session = self.registry.get(session_id)
        if session is not None and session.parent is None:
            self.registry.close(session)
            self._unlisten(session.id)

    def _innermost(self, handler: Handler, scope: Session) -> Session:
        return innermost(scope, group_of(handler.peer[0], self.hierarchy))

    def _find(self, session_id: str, secret: str | None, scope: Session | None) -> Session | None:
        session = self.registry.find(session_id, secret)
        if session is None:
            return None
        if scope is not None and (session is scope or not is_within(session, scope)):
            return None  # a task may not act on its own session or outside it
        return session

    def _open(
        self, handler: Handler, scope: Session | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        unknown = set(body) - OPEN_FIELDS
        if unknown:
            raise HttpError(400, f"unknown field {sorted(unknown)[0]!r}")
        limits = Limits.from_dict(body.get("limits") or {})
        outside = sorted(set(limits.to_dict()) - SESSION_LIMITS)
        if outside:
            known = ", ".join(sorted(SESSION_LIMITS))
            raise HttpError(400, f"limits.{outside[0]}: a session enforces only {known}")
        # Through a session's socket, sessions nest in the one the caller runs in: never above
        # its own limits.
        inner = None if scope is None else self._innermost(handler, scope)
        parent = inner
        if body.get("parent") is not None:
            reference = body["parent"]
            if not isinstance(reference, dict):
                raise HttpError(400, 'parent must be {"id": ..., "secret": ...}')
            parent = self._find(str(reference.get("id")), str(reference.get("secret")), scope)
            if parent is None or (inner is not None and not is_within(parent, inner)):
                raise HttpError(404, "no such session")
        cpuset = body.get("cpuset")
        if cpuset is not None and (
            parent is not None
            or not isinstance(cpuset, list)
            or not all(isinstance(core, int) and core >= 0 for core in cpuset)
            or not cpuset
        ):
            raise HttpError(400, "cpuset must be a list of cores, for a top-level session only")
        owner = body.get("socket_owner")
        top_level = scope is None and parent is None
        if owner is not None and (not top_level or not isinstance(owner, int)):
            raise HttpError(400, "socket_owner (a uid) is for top-level sessions only")
        deadline = body.get("deadline")
        if deadline is not None and not top_level:
            raise HttpError(400, "deadline is for top-level sessions only")
        seconds = None if deadline is None else parse_time(deadline, "deadline")
        session = self.registry.open(
            limits,
            cpuset=tuple(cpuset) if cpuset else None,
            container=bool(body.get("container", False)),
            parent=parent,
        )
        if seconds is not None:
            session.set_deadline(time.monotonic() + seconds)
        if top_level and handler.peer[0] > 0 and not self.owners.watch(handler.peer[0], session.id):
            self.registry.close(session)
            raise HttpError(400, "the process that opened the session is gone")
        socket_path = None
        if owner is not None:
            socket_path = self.sessions_dir / f"{session.id}.sock"
            try:
                self._listen(
                    session.id, socket_path, session, MAX_SESSION_CONNECTIONS, 0o600, owner, 0
                )
            except OSError:
                self.owners.forget(session.id)
                self.registry.close(session)
                raise
        return {
            "id": session.id,
            "secret": session.secret,
            "cgroup": session.cgroup_parent,
            "socket": str(socket_path) if socket_path else None,
            "limits": session.limits.to_dict(),
        }

    def _act(
        self,
        handler: Handler,
        scope: Session | None,
        session_id: str,
        verb: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        session = self._find(session_id, handler.secret(), scope)
        if session is None:
            final = self.registry.final(session_id, handler.secret(), within=scope)
            if verb == "close" and final is not None:
                return final.to_dict()  # close is idempotent
            raise HttpError(404, "no such session")
        if verb == "attach":
            pid = handler.peer[0]
            if scope is not None:
                inner = self._innermost(handler, scope)
                if session is inner or not is_within(session, inner):
                    raise HttpError(403, "a process may attach only to a session nested in its own")
            elif session.parent is not None:
                group = group_of(pid, self.hierarchy)
                outer = session.parent.cgroup.path
                if group is None or not (group == outer or group.startswith(outer + "/")):
                    raise HttpError(403, "only a process of the enclosing session may attach")
            session.attach(pid)
            return {"id": session.id, "pid": pid}
        if verb == "kill":
            reason = body.get("reason", "cancel")
            if reason not in {str(item) for item in Reason}:
                raise HttpError(400, f"reason must be one of {', '.join(Reason)}")
            session.kill(Reason(reason))
            return session.report().to_dict()
        if verb == "deadline":
            if scope is not None or session.parent is not None:
                raise HttpError(
                    403, "a deadline is set through the main socket, on top-level sessions"
                )
            unknown = set(body) - {"deadline"}
            if unknown:
                raise HttpError(400, f"unknown field {sorted(unknown)[0]!r}")
            value = body.get("deadline")
            seconds = None if value is None else parse_time(value, "deadline")
            session.set_deadline(None if seconds is None else time.monotonic() + seconds)
            return session.report().to_dict()
        report = self.registry.close(session)
        if session.parent is None:
            self.owners.forget(session.id)
            self._unlisten(session.id)
        return report.to_dict()


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()
