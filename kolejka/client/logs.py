"""A task's log as it grows: `LogPart`, one answer of ``GET tasks/{key}/log/``, and `follow`,
which reads a stream piece by piece (`KolejkaClient.log`, ``kolejka-client task log``)."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import ConnectionFailed
from .models import _document, _int, _optional_int, _time
from .transport import MAX_PAUSE, Transport

STREAMS = ("stdout", "stderr")
# A server that answers a follow at once with no news is asked again after this long.
POLL_FLOOR = 1.0


@dataclass(frozen=True)
class LogPart:
    """`data`, bytes of a task's `stream` from `offset` on, of its attempt `attempt`, which
    began at `started` (a new run of the task, also of the same number, begins later).

    `size`: the bytes of the stream the server knows; `complete`: the task is final, nothing
    comes past `size`; `truncated`: the stream reached an output cap, what followed was not
    kept.
    """

    stream: str
    attempt: int | None
    started: datetime | None
    offset: int
    data: bytes
    size: int
    complete: bool
    truncated: bool
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def next(self) -> int:
        return self.offset + len(self.data)

    @classmethod
    def from_dict(cls, data: object) -> LogPart:
        document = _document(data, "a log")
        try:
            content = base64.b64decode(str(document.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise ConnectionFailed(
                "the server's log answer holds data that is not base64"
            ) from None
        return cls(
            stream=str(document.get("stream") or "stdout"),
            attempt=_optional_int(document.get("attempt")),
            started=_time(document.get("started")),
            offset=_int(document.get("offset")),
            data=content,
            size=_int(document.get("size")),
            complete=bool(document.get("complete")),
            truncated=bool(document.get("truncated")),
            raw=document,
        )


def read(transport: Transport, key: str, stream: str, offset: int, wait: float) -> LogPart:
    """One piece of the log from `offset`, long-polling up to `wait` seconds for one."""
    answer = transport.json(
        "GET",
        f"tasks/{key}/log/",
        params={"stream": stream, "offset": offset, "wait": f"{wait:g}"},
        timeout=wait + MAX_PAUSE,
    )
    return LogPart.from_dict(answer)


def follow(
    transport: Transport, key: str, stream: str = "stdout", *, offset: int = 0, wait: bool = False
) -> Iterator[LogPart]:
    """Yield the pieces of the task's `stream` from `offset`: what there is now, and with
    `wait` what comes, until the task is final and all of it was read. A task that started
    again (a new attempt, after a lost node) is read from the start of the new attempt: the
    first part of it has another `started`. The last part yielded may have no data; it tells
    `complete` and `truncated`."""
    started: datetime | None = None
    while True:
        asked = time.monotonic()
        part = read(transport, key, stream, offset, transport.long_poll(None) if wait else 0)
        if started is not None and part.started != started and offset:
            started, offset = part.started, 0
            continue
        started, offset = part.started, part.next
        done = part.complete and part.next >= part.size
        if part.data or done or not wait:
            yield part
        if done or (not wait and part.next >= part.size):
            return
        if not part.data and time.monotonic() - asked < POLL_FLOOR:
            time.sleep(POLL_FLOOR)
