"""Several servers, one grid: three `kolejka-server serve` processes on one PostgreSQL database and
one S3 blob store (a moto server on loopback), behind Debian's haproxy, with real foremen and
clients spread over them."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import requests

from kolejka.client import KolejkaClient

from ..client.live import wait_for
from ..server.harness import (
    BIN,
    PASSWORD,
    Api,
    Template,
    base_env,
    listening_socket,
    postgres_url,
    wait_until_up,
)
from ..server.s3 import moto_server
from .grid import BUSYBOX, Grid, observer

TASKS = 60
HAPROXY = """
global
    maxconn 512
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend grid
    bind fd@{fd}
    default_backend servers
backend servers
    balance roundrobin
    http-response set-header X-Kolejka-Backend %[srv_name]
{servers}
"""


@contextmanager
def running(command: list[str], log: Path, **options: object) -> Iterator[subprocess.Popen[bytes]]:
    """A process of the test's, stopped by SIGTERM (SIGKILL after 10 s) at the end."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **options
        )  # type: ignore[call-overload]
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def server(data: Path, env: dict[str, str]) -> Iterator[str]:
    """A `kolejka-server serve` of two workers on `env`; its URL."""
    sock = listening_socket()
    command = [str(BIN / "kolejka-server"), "serve", "--bind", f"fd://{sock.fileno()}"]
    command += ["--workers", "2", "--threads", "16"]
    log = data / "server.log"
    with running(command, log, env=env, pass_fds=(sock.fileno(),)) as process:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()
        wait_until_up(url, process, log)  # type: ignore[arg-type]
        yield url


@contextmanager
def haproxy(root: Path, backends: dict[str, str]) -> Iterator[str]:
    """Debian's haproxy, round-robin over `backends` (name: URL); its URL."""
    sock = listening_socket()
    servers = "\n".join(
        f"    server {name} {url.removeprefix('http://')}" for name, url in backends.items()
    )
    config = root / "haproxy.cfg"
    config.write_text(HAPROXY.format(fd=sock.fileno(), servers=servers))
    command = ["haproxy", "-db", "-f", str(config)]
    with running(command, root / "haproxy.log", pass_fds=(sock.fileno(),)) as process:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()
        wait_until_up(url, process, root / "haproxy.log")  # type: ignore[arg-type]
        yield url


class Front:
    """What `Grid` needs of a server: the URL its foremen and clients use, and the tokens."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens

    def client(self, user: str) -> KolejkaClient:
        return KolejkaClient(self.url, token=self.tokens[user], backoff=0.01)


def admin_page(url: str, session: requests.Session) -> requests.Response:
    return session.get(url + "/admin/", allow_redirects=False, timeout=30)


def log_in_to_admin(url: str) -> requests.Session:
    session = requests.Session()
    form = session.get(url + "/admin/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None, form.text[:500]
    answer = session.post(
        url + "/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token.group(1), "username": "ada", "password": PASSWORD},
        headers={"Referer": url + "/admin/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/", answer.text[:500]
    assert admin_page(url, session).status_code == 200
    return session


def test_it_runs_every_task_exactly_once_on_three_servers_behind_haproxy(tmp_path: Path):
    with ExitStack() as stack:
        template = Template("postgres", tmp_path)
        stack.callback(template.close)
        database = template.copy(tmp_path / "a")
        assert database is not None
        stack.callback(template.drop, database)
        s3 = stack.enter_context(moto_server())
        store = s3.settings()
        urls: dict[str, str] = {}
        for name in ("a", "b", "c", "d"):
            data = tmp_path / name
            if not data.exists():
                shutil.copytree(template.data, data)
            # Each server makes a key of its own in its data folder, as on its own machine; D
            # is given another one.
            (data / "secret_key").unlink()
            given = {"KOLEJKA_SECRET_KEY": secrets.token_urlsafe(50)} if name == "d" else {}
            env = base_env(data, database, KOLEJKA_DB_CONNECTIONS="10", **store, **given)
            urls[name] = stack.enter_context(server(data, env))
        tokens = template.tokens

        # An admin logged in on A is logged in on B and C (the database's key), not on D.
        session = log_in_to_admin(urls["a"])
        assert admin_page(urls["b"], session).status_code == 200
        assert admin_page(urls["c"], session).status_code == 200
        assert admin_page(urls["d"], session).status_code == 302
        del urls["d"]

        front = stack.enter_context(haproxy(tmp_path, urls))
        grid = Grid(Front(front, tokens), stack.enter_context(observer(tmp_path)), tmp_path)  # type: ignore[arg-type]
        stack.callback(grid.close)
        grid.foreman("node-1")
        grid.foreman("node-2")
        grid.foreman("node-3", KOLEJKA_SERVER=urls["c"])

        # A blob uploaded through A downloads through C.
        content = os.urandom(100_000)
        through_a = Api(urls["a"] + "/api/v1/", tokens["alice"]).post("blobs/", data=content)
        reference = through_a.json()["reference"]
        assert Api(urls["c"] + "/api/v1/", tokens["alice"]).get(f"blobs/{reference}/").content == (
            content
        )

        submitters = [("alice", front), ("bob", front), ("bob", urls["b"])]
        backends: Counter[str] = Counter()
        keys: dict[str, tuple[str, int]] = {}
        for number in range(TASKS):
            user, url = submitters[number % len(submitters)]
            task = {
                "image": BUSYBOX,
                "args": ["sh", "-c", f"echo task {number}"],
                "requires": [grid.tag],
                "stdout": "out.txt",
            }
            answer = Api(url + "/api/v1/", tokens[user]).post("tasks/", json={"task": task})
            assert answer.status_code == 201, answer.text
            backends[answer.headers.get("X-Kolejka-Backend", "direct")] += 1
            keys[answer.json()["key"]] = (user, number)
        assert {"a", "b", "c"} <= set(backends), backends  # haproxy spread the submissions

        clients = {user: Api(front + "/api/v1/", tokens[user]) for user in ("alice", "bob")}
        pending = list(keys)

        def finished() -> bool:
            while pending:
                user, _ = keys[pending[0]]
                state = clients[user].get(f"tasks/{pending[0]}/").json()["state"]
                if state not in ("done", "failed", "cancelled"):
                    return False
                pending.pop(0)
            return True

        wait_for(finished, f"{TASKS} tasks to finish", deadline=240)

        names = list(urls)
        nodes: Counter[str] = Counter()
        for index, (key, (user, number)) in enumerate(keys.items()):
            # Each task, its result and its output read through any server.
            reader = Api(urls[names[index % len(names)]] + "/api/v1/", tokens[user])
            task = reader.get(f"tasks/{key}/").json()
            assert (task["state"], task["attempts"]) == ("done", 1), task
            nodes[task["node"]] += 1
            out = reader.get(f"tasks/{key}/result/").json()["files"]["out.txt"]["reference"]
            assert reader.get(f"blobs/{out}/").text == f"task {number}\n"
        # The foremen on haproxy and the one on C all ran tasks.
        assert set(nodes) == {"node-1", "node-2", "node-3"}, nodes

        # Every task held exactly one lease, ended with the one result the server accepted.
        with psycopg.connect(postgres_url(database)) as connection:
            leases = connection.execute(
                "SELECT t.key, count(l.id), count(l.ended) FROM kolejka_task t"
                " LEFT JOIN kolejka_lease l ON l.task_id = t.id GROUP BY t.key"
            ).fetchall()
        assert {key for key, _, _ in leases} == set(keys)
        assert all((held, ended) == (1, 1) for _, held, ended in leases), leases
        # No upload or trash left half-way in the shared store.
        assert s3.keys(store, "tmp/") == []
