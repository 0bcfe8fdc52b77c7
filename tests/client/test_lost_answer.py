"""A submission whose answer is lost on the way back: the client sends it again with the same
``Idempotency-Key`` and gets the task the first copy queued, never a second task."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kolejka.client import KolejkaClient


class LosingProxy:
    """A TCP proxy to the server that forwards the first ``POST /api/v1/tasks/`` and then
    closes the client's connection instead of passing the server's answer back."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.lost = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()
        self._pipe(client, upstream, False)

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if not answers and data.startswith(b"POST /api/v1/tasks/ ") and not self.lost:
                    self.lost = 1
                    sink.sendall(data)
                    sink.recv(65536)  # the server's answer: queued, and dropped here
                    source.close()
                    sink.close()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()


@pytest.fixture
def proxy(server) -> Iterator[LosingProxy]:
    lossy = LosingProxy(server.port)
    yield lossy
    lossy.listener.close()


def test_it_finds_its_task_when_the_answer_to_a_submission_is_lost(server, proxy, task_dir):
    client = KolejkaClient(
        f"http://127.0.0.1:{proxy.port}", token=server.tokens["alice"], backoff=0.01
    )
    before = {info.key for info in server.client("alice").tasks(limit=1000)}
    info = client.submit(task_dir)
    assert proxy.lost == 1  # the first answer never came back
    after = {info.key for info in server.client("alice").tasks(limit=1000)}
    assert after - before == {info.key}  # one task, the one the first copy queued
