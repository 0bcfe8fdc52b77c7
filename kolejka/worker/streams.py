"""The task's standard streams over docker's attach connection.

The container logs nothing on the host (log driver ``none``); the worker attaches before it starts
the container and writes stdout and stderr straight into the result folder, each file capped and
flushed as it comes (a foreman sends the files to the server as they grow).
stdin, when the task names a file, is fed from a thread and then closed, so the program sees EOF.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
_HEADER = 8  # docker's multiplexed frames: stream (1 byte), 3 zero bytes, size (4, big-endian)
_TICK = 0.05


class Sink:
    """One output file in the result folder, keeping at most `cap` bytes."""

    def __init__(self, path: Path, cap: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self.cap = cap
        self.size = 0
        self.truncated = False

    def write(self, data: bytes | bytearray) -> bool:
        """Keep `data` up to the cap; `False` once something had to be cut."""
        room = self.cap - self.size
        if len(data) > room:
            data = data[: max(room, 0)]
            self.truncated = True
        self._file.write(data)
        self.size += len(data)
        return not self.truncated

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def feed(sock: socket.socket, path: Path) -> threading.Thread:
    """Send the file at `path` to the container's stdin in a thread, then close stdin."""

    def run() -> None:
        try:
            with open(path, "rb") as source:
                while chunk := source.read(1 << 16):
                    sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as error:  # the program exited without reading everything
            log.debug("stdin: %s", error)

    thread = threading.Thread(target=run, name="kolejka-stdin", daemon=True)
    thread.start()
    return thread


def pump(
    sock: socket.socket,
    sinks: dict[int, Sink | None],
    *,
    tick: Callable[[], None],
    overflow: Callable[[], None],
) -> None:
    """Read the attach stream until the container closes it, routing frames to `sinks` (a missing
    or `None` sink discards). Call `tick` at least every 50 ms (it may stop the task) and
    `overflow` once when a sink's cap is passed."""
    buffer = bytearray()
    overflowed = False
    while True:
        ready, _, _ = select.select([sock], [], [], _TICK)
        tick()
        if not ready:
            continue
        try:
            data = sock.recv(1 << 16)
        except (ConnectionResetError, TimeoutError):
            data = b""
        if not data:
            return
        buffer += data
        offset = 0
        while len(buffer) - offset >= _HEADER:
            size = int.from_bytes(buffer[offset + 4 : offset + 8], "big")
            if len(buffer) - offset - _HEADER < size:
                break
            sink = sinks.get(buffer[offset])
            if sink is not None:
                payload = buffer[offset + _HEADER : offset + _HEADER + size]
                if not sink.write(payload) and not overflowed:
                    overflowed = True
                    overflow()
            offset += _HEADER + size
        del buffer[:offset]
        # What the task printed is in the file at once: the foreman streams it from there.
        for sink in {id(sink): sink for sink in sinks.values() if sink is not None}.values():
            sink.flush()
