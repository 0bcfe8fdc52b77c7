"""The connection budget: what one server may open on PostgreSQL, split across its workers, and
refused at start-up when PostgreSQL cannot take it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from .harness import BIN, Template, base_env, manage, postgres_url, serve


@pytest.fixture
def database(templates: dict[str, Template], tmp_path: Path) -> Iterator[str]:
    """A copy of the PostgreSQL template, its data folder in ``tmp_path / "data"``."""
    template = templates["postgres"]
    name = template.copy(tmp_path / "data")
    assert name is not None
    yield name
    template.drop(name)


def connections_to(database: str) -> int:
    with psycopg.connect(postgres_url("postgres")) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_it_keeps_a_server_within_its_budget_under_load(
    templates: dict[str, Template], tmp_path: Path
):
    # Two workers share 8 connections: a pool of 3 and a listener each.
    with serve(templates["postgres"], tmp_path / "data", KOLEJKA_DB_CONNECTIONS="8") as server:
        database = server.env["DATABASE_URL"].rsplit("/", 1)[1]
        alice = server.api("alice")
        peak = 0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, connections_to(database))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(24) as pool:
                answers = list(pool.map(lambda _: alice.get("tasks/").status_code, range(240)))
        finally:
            done.set()
            watcher.join()
        assert set(answers) == {200}
        assert 0 < peak <= 8


def test_it_refuses_to_serve_past_what_postgresql_takes(database: str, tmp_path: Path):
    env = base_env(tmp_path / "data", database, KOLEJKA_DB_CONNECTIONS="100000")
    served = subprocess.run(
        [str(BIN / "kolejka-server"), "serve", "--bind", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode != 0
    assert "kolejka.E004" in served.stderr and "max_connections" in served.stderr
    assert "Traceback" not in served.stderr
    checked = manage(env, "check", "--database", "default", check=False)
    assert checked.returncode != 0 and "kolejka.E004" in checked.stderr


def test_it_refuses_a_budget_too_small_or_given_twice(database: str, tmp_path: Path):
    data = tmp_path / "data"
    small = manage(base_env(data, database, KOLEJKA_DB_CONNECTIONS="5"), "check", check=False)
    assert small.returncode != 0
    assert small.stderr.strip().splitlines() == [
        "kolejka-server: KOLEJKA_DB_CONNECTIONS=5 is too few for 2 workers: each needs a pool "
        "of at least 2 and a listener, 6 in all"
    ]
    twice = base_env(data, database, KOLEJKA_DB_CONNECTIONS="20", KOLEJKA_DB_POOL_SIZE="4")
    both = manage(twice, "check", check=False)
    assert both.returncode != 0 and "not both" in both.stderr and "Traceback" not in both.stderr
