"""Real receivers on loopback for the notification tests: an HTTP server that records what is
POSTed to it and answers as a script says, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records each POST; answers with the next of `answers` (a status, ``"hang"``: never answer
    until `released`, or ``("redirect", URL)``), then 204 once they run out. With `together`,
    the first calls wait for each other (`together` of them at once, else none answers within
    a minute, and `apart` is set): proof that as many senders worked at once."""

    url: str
    calls: list[Call] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    together: threading.Barrier | None = None
    apart: bool = False

    def bodies(self) -> list[Any]:
        return [call.json for call in self.calls]


@contextmanager
def receiver(*answers: Any, together: int = 0) -> Iterator[Receiver]:
    """A `Receiver` on 127.0.0.1 at a free port."""
    state = Receiver("", answers=list(answers))
    if together:
        state.together = threading.Barrier(together, timeout=60)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.calls.append(Call(self.path, dict(self.headers.items()), body))
                answer = state.answers.pop(0) if state.answers else 204
                first = len(state.calls) <= (state.together.parties if state.together else 0)
            if first and state.together is not None:
                try:
                    state.together.wait()
                except threading.BrokenBarrierError:
                    state.apart = True
            if answer == "hang":
                state.released.wait(60)
                return
            if isinstance(answer, tuple):
                self.send_response(302)
                self.send_header("Location", answer[1])
            else:
                self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Message]]]:
    """An SMTP server on 127.0.0.1: its port and the messages it received."""
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox.messages
    finally:
        controller.stop()
