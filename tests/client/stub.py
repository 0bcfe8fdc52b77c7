"""A scripted HTTP server on a free port, for the client's own logic (retries, error
translation, hash checks): it answers each request with the next scripted reply and records
what it was sent. The behaviour against the real server is proven in the other tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Close the connection after sending this many bytes of the body (a broken download).
    cut_after: int | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Stub:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                reply = stub.replies.pop(0) if stub.replies else Reply(500, {"code": "x"})
                data = reply.body
                if isinstance(data, dict | list):
                    data = json.dumps(data).encode()
                data = data or b""
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if reply.cut_after is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data if reply.cut_after is None else data[: reply.cut_after])
                if reply.cut_after is not None:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
