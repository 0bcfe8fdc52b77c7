"""A running task's output, sent to the server as it grows, so that ``task log -f`` shows it.

The worker writes the task's stdout and stderr into the result folder as the task prints them,
each capped at its ``max_output``. A `LogStream` thread reads the files' new bytes and sends
them (`KolejkaClient.append_log`) in chunks of at most 64 KiB: up to the last whole line as soon
as one is there (but a quarter of a second at least after the last send), the rest half a
second after it came. It never holds up the task (which writes files, not to us) nor the
heartbeat (its own thread and client). A server that is away costs only the log: the chunk is
sent again later from the server's own end, and the result, sent as ever, holds the whole
output. `close` sends what is left (what a cancelled or killed task printed last), for at most
`FINAL_WAIT` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kolejka.client import ClientError, Conflict, KolejkaClient, Lease, LeaseLost

log = logging.getLogger(__name__)

MAX_CHUNK = 64 * 1024
LINE_WAIT = 0.5  # how long a part of a line waits for its end before it is sent as it is
# The least time between two sends of a stream (but for full chunks): a line after a quiet
# spell goes at once, a task printing without a pause costs the server 4 requests a second.
MIN_GAP = 0.25
TICK = 0.05  # how often the files are looked at
RETRY = 1.0  # after a failed send, the pause before the next
FINAL_WAIT = 5.0
SEND_TIMEOUT = 5.0


@dataclass
class _Stream:
    path: Path
    sent: int = 0  # the server's end of the stream
    waiting_since: float | None = None  # when the first byte not sent yet was seen
    last_sent: float = 0.0
    over: bool = False  # nothing more goes: the cap was reached, or the server refused


class LogStream:
    """Sends the files `paths` (by stream name) of the task under `lease` as they grow; `cap`
    is the worker's output cap, which ends a stream (`truncated`) once reached."""

    def __init__(
        self,
        connect: Callable[[], KolejkaClient],
        lease: Lease,
        paths: Mapping[str, Path],
        cap: int,
    ) -> None:
        self.connect = connect
        self.lease = lease
        self.cap = cap
        self.streams = {name: _Stream(path) for name, path in paths.items()}
        self.stopping = threading.Event()
        self.lost = False
        self.paused_until = 0.0
        self.thread = threading.Thread(target=self._run, name=f"log-{lease.id}", daemon=True)

    def __enter__(self) -> LogStream:
        if self.streams:
            self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Send what is left, for at most `FINAL_WAIT` seconds, and stop."""
        if not self.thread.is_alive():
            return
        self.stopping.set()
        self.thread.join(timeout=FINAL_WAIT + SEND_TIMEOUT)
        if self.thread.is_alive():
            log.warning("lease %s: the end of the task's log could not be sent", self.lease.id)

    def _run(self) -> None:
        client = self.connect()
        client.transport.retries = 0  # this loop tries again itself, from the server's end
        try:
            while not self.stopping.wait(TICK):
                self._send(client, final=False)
            deadline = time.monotonic() + FINAL_WAIT
            while time.monotonic() < deadline and self._send(client, final=True):
                time.sleep(max(0.0, min(RETRY, self.paused_until - time.monotonic())))
        except Exception:
            log.exception("lease %s: streaming the task's log failed", self.lease.id)
        finally:
            client.close()

    def _send(self, client: KolejkaClient, *, final: bool) -> bool:
        """Send what is due of every stream; whether something remains to send."""
        left = False
        for name, stream in self.streams.items():
            while not (stream.over or self.lost) and time.monotonic() >= self.paused_until:
                chunk = self._due(stream, final)
                if chunk is None:
                    break
                self._append(client, name, stream, chunk)
            left = left or not (stream.over or self.lost or self._drained(stream))
        return left

    def _drained(self, stream: _Stream) -> bool:
        try:
            return os.stat(stream.path).st_size <= stream.sent
        except OSError:
            return True

    def _due(self, stream: _Stream, final: bool) -> bytes | None:
        """The next chunk of `stream` to send now, if one is due."""
        if self._drained(stream):
            stream.waiting_since = None
            return None
        try:
            with open(stream.path, "rb") as file:
                file.seek(stream.sent)
                data = file.read(MAX_CHUNK)
        except OSError:
            return None  # not made yet, or already gone with the task's folder
        if not data:
            stream.waiting_since = None
            return None
        now = time.monotonic()
        if stream.waiting_since is None:
            stream.waiting_since = now
        if final or len(data) == MAX_CHUNK:
            return data
        if now - stream.last_sent < MIN_GAP:
            return None
        if now - stream.waiting_since >= LINE_WAIT:
            return data
        line_end = data.rfind(b"\n")
        return data[: line_end + 1] if line_end >= 0 else None

    def _append(self, client: KolejkaClient, name: str, stream: _Stream, data: bytes) -> None:
        capped = stream.sent + len(data) >= self.cap
        try:
            end = client.append_log(
                self.lease, name, stream.sent, data, truncated=capped, timeout=SEND_TIMEOUT
            )
        except LeaseLost:
            self.lost = True  # the heartbeat stops the task; nothing of it is wanted any more
            return
        except Conflict as error:
            log.warning("lease %s: the server refused the %s: %s", self.lease.id, name, error)
            stream.over = True
            return
        except ClientError as error:
            log.info("lease %s: log not sent, trying again: %s", self.lease.id, error)
            self.paused_until = time.monotonic() + RETRY
            return
        stream.over = capped or end < stream.sent + len(data)  # the server's cap cut it
        stream.sent = end
        stream.waiting_since = None
        stream.last_sent = time.monotonic()
