"""Real server processes for the tests: `kolejka-server serve` (gunicorn, ASGI workers) on SQLite or
PostgreSQL, each on a fresh copy of a migrated template database with the test users."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
USERS = {
    "alice": "client",
    "bob": "client",
    "fred": "foreman",
    "gina": "foreman",
    "ivan": "inspector",
    "ada": "admin",
    "dora": "client",  # disabled
    "rita": "client",  # her token was revoked
}
PASSWORD = "correct horse battery staple"
MAKE_USERS = """
import json, sys
from rest_framework.authtoken.models import Token
from kolejka.server.grid.models import User
users, password = json.load(sys.stdin)
tokens = {}
for name, role in users.items():
    user = User(username=name, role=role, is_staff=role == "admin", is_superuser=role == "admin")
    user.is_active = name != "dora"
    user.set_password(password)
    user.save()
    tokens[name] = Token.objects.create(user=user).key
Token.objects.filter(user__username="rita").delete()
print(json.dumps(tokens))
"""
RUN = secrets.token_hex(4)


def postgres_url(database: str) -> str:
    base = os.environ.get("KOLEJKA_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
    return base.rsplit("/", 1)[0] + "/" + database


def postgres_admin(sql: str) -> None:
    import psycopg

    url = os.environ.get("KOLEJKA_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def manage(
    env: dict[str, str], *args: str, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``kolejka-server ARGS`` in `env`; fail the test with its output when it fails."""
    done = subprocess.run(
        [str(BIN / "kolejka-server"), *args], env=env, capture_output=True, text=True, **kwargs
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kolejka-server {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def base_env(data: Path, database: str | None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KOLEJKA_")}
    env.pop("DATABASE_URL", None)
    env["KOLEJKA_DATA"] = str(data)
    env["KOLEJKA_TEST_POSTGRES"] = os.environ.get("KOLEJKA_TEST_POSTGRES", "")
    if "KOLEJKA_DB_CONNECTIONS" not in extra:
        env["KOLEJKA_DB_POOL_SIZE"] = "4"
    if database is not None:
        env["DATABASE_URL"] = postgres_url(database)
    env.update(extra)
    return env


class Template:
    """A migrated database holding the test users, copied for each server."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.data = root / f"template-{backend}"
        # A name of its own: the scale-out test makes a template beside the session's.
        self.database = (
            f"kolejka_test_{RUN}_template_{secrets.token_hex(4)}" if backend == "postgres" else None
        )
        self.copies: list[str] = []
        if self.database:
            postgres_admin(f'CREATE DATABASE "{self.database}"')
        env = base_env(self.data, self.database)
        manage(env, "migrate", "--no-input")
        # One process for all users (test_users proves `adduser` itself).
        made = manage(env, "shell", "-c", MAKE_USERS, input=json.dumps([USERS, PASSWORD]))
        self.tokens = json.loads(made.stdout.strip().splitlines()[-1])

    def copy(self, data: Path) -> str | None:
        """A fresh data folder at `data` (and database); return the database name."""
        shutil.copytree(self.data, data)
        if not self.database:
            return None
        database = f"kolejka_test_{RUN}_{secrets.token_hex(4)}"
        postgres_admin(f'CREATE DATABASE "{database}" TEMPLATE "{self.database}"')
        self.copies.append(database)
        return database

    def drop(self, database: str) -> None:
        postgres_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def close(self) -> None:
        if self.database:
            self.drop(self.database)


class Api:
    """A user's view of the API: ``api.post("tasks/", json=...)`` → `requests.Response`."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)


class Server:
    def __init__(
        self,
        backend: str,
        data: Path,
        env: dict[str, str],
        url: str,
        tokens: dict[str, str],
        pid: int | None = None,
    ):
        self.backend = backend
        self.pid = pid  # the server's main process, where it is one this harness started
        self.data = data
        self.env = env
        self.url = url
        self.tokens = dict(tokens)

    def api(self, user: str | None) -> Api:
        return Api(self.url + "/api/v1/", self.tokens[user] if user else None)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return manage(self.env, *args, check=check)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, deadline: float = 60
) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            if requests.get(url + "/api/v1/auth/me/", timeout=10).status_code == 401:
                return
        except requests.RequestException:
            pass  # not listening or not answering yet
        time.sleep(0.05)
    raise AssertionError(f"the server did not come up in {deadline} s:\n{log.read_text()}")


@contextmanager
def serve(
    template: Template,
    data: Path,
    *,
    workers: int = 2,
    threads: int = 16,
    through: Callable[[str], str] | None = None,
    **settings: str,
) -> Iterator[Server]:
    """A production server (gunicorn) on a fresh copy of `template`, with extra `settings`;
    `through` maps its database URL (to reach PostgreSQL through a proxy)."""
    database = template.copy(data)
    env = base_env(data, database, **settings)
    if through is not None:
        env["DATABASE_URL"] = through(env["DATABASE_URL"])
    sock = listening_socket()
    port = sock.getsockname()[1]
    log = data / "server.log"
    with open(log, "wb") as output:
        command = [str(BIN / "kolejka-server"), "serve", "--bind", f"fd://{sock.fileno()}"]
        command += ["--workers", str(workers), "--threads", str(threads)]
        # Its own process group, so that a server that will not stop goes with all its workers.
        process = subprocess.Popen(
            command,
            env=env,
            pass_fds=(sock.fileno(),),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sock.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        yield Server(template.backend, data, env, url, template.tokens, process.pid)
    finally:
        # SIGTERM, gunicorn's graceful stop: the workers cut the long-polls after 3 s.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            print(f"the server did not stop in 5 s; killed. Its log:\n{log.read_text()[-3000:]}")
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if database:
            template.drop(database)
