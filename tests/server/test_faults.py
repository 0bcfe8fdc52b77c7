"""Known faults of the machine answer in the one error shape, never 500: a full disk under the
blob store (507), a database that went away (503 with Retry-After, and clients wait and repeat),
and a long-poll longer than the server grants (cut to its maximum, which every answer says)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from kolejka.client import KolejkaClient

from .flows import claim, eventually, finish, register, submit, upload
from .harness import Server, Template, serve


@pytest.fixture
def full_disk(templates: dict[str, Template], tmp_path: Path) -> Iterator[Server]:
    """A server whose blob store is a 256 KiB file system."""
    with serve(templates["sqlite"], tmp_path / "data") as server:
        blobs = tmp_path / "data" / "blobs"
        blobs.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(blobs)], check=True)
        try:
            yield server
        finally:
            subprocess.run(["umount", "-l", str(blobs)], check=True)


def test_it_answers_507_when_the_blob_store_is_full(full_disk: Server):
    alice = full_disk.api("alice")
    answer = alice.post("blobs/", data=os.urandom(512 * 1024))
    assert answer.status_code == 507, answer.text
    assert answer.json()["code"] == "insufficient_storage" and "full" in answer.json()["detail"]
    assert list((full_disk.data / "blobs" / "tmp").iterdir()) == []  # nothing half-written left
    assert alice.post("blobs/", data=b"small").status_code == 201  # what fits is still taken


class Proxy:
    """A TCP forwarder to `target` that can be cut (every connection dropped, new ones refused)
    and restored on the same port: a database that went away, for real."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.refused = 0
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        assert listener is not None
        listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxied(templates: dict[str, Template], tmp_path: Path) -> Iterator[tuple[Server, Proxy]]:
    """A server on PostgreSQL reached through a `Proxy`, waiting 1 s for a connection."""
    base = urlsplit(os.environ.get("KOLEJKA_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    proxy = Proxy((base.hostname or "127.0.0.1", base.port or 5432))
    proxy.start()

    def through(url: str) -> str:
        parts = urlsplit(url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))

    with serve(
        templates["postgres"], tmp_path / "data", through=through, KOLEJKA_DB_WAIT="1s"
    ) as s:
        yield s, proxy


def test_it_answers_503_while_the_database_is_away_and_clients_wait_for_it(proxied):
    server, proxy = proxied
    alice = server.api("alice")
    task = submit(alice)
    proxy.cut()

    def unavailable() -> list[requests.Response]:
        answer = alice.get(f"tasks/{task['key']}/")
        assert answer.status_code in (200, 503), answer.text  # never a 500
        return [answer] if answer.status_code == 503 else []

    (away,) = eventually(unavailable, what="a 503 while the database is away")
    assert away.json()["code"] == "unavailable" and int(away.headers["Retry-After"]) >= 1
    seen: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, *args, **kwargs: seen.append(response.status_code)
    )
    client = KolejkaClient(
        server.url, token=server.tokens["alice"], retries=20, backoff=0.2, session=session
    )
    fetched: dict[str, object] = {}
    waiter = threading.Thread(target=lambda: fetched.update(info=client.task(task["key"])))
    waiter.start()
    eventually(lambda: 503 in seen, what="the client to meet a 503")
    proxy.start()
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    assert fetched["info"].key == task["key"]  # type: ignore[attr-defined]
    assert seen[0] == 503 and seen[-1] == 200


def test_it_cuts_a_longer_wait_to_its_maximum_and_says_it(
    templates: dict[str, Template], tmp_path: Path
):
    with serve(templates["sqlite"], tmp_path / "data", KOLEJKA_MAX_WAIT="1s") as server:
        alice, fred = server.api("alice"), server.api("fred")
        register(fred, "n1")
        started = time.monotonic()
        answer = fred.post("nodes/n1/claim/", json={"wait": 3600})
        assert answer.status_code == 200 and answer.json()["lease"] is None
        assert answer.headers["Kolejka-Max-Wait"] == "1"
        assert time.monotonic() - started < 60  # not the hour asked for
        task = submit(alice)
        # The client asks what it wants and the server cuts it: no 400 for a lower maximum.
        client = KolejkaClient(server.url, token=server.tokens["alice"])
        waited: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: waited.update(info=client.wait(task["key"])))
        waiter.start()
        eventually(lambda: client.transport.max_wait == 1.0, what="the client to learn it")
        finish(fred, claim(fred, "n1")["lease"]["id"])
        waiter.join(timeout=120)
        assert not waiter.is_alive()
        assert waited["info"].state == "done"  # type: ignore[attr-defined]
        assert upload(alice, b"x")
