"""Running the server with no settings file: defaults, the secret key, refusing bad settings."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import requests

from .harness import BIN, base_env, manage


def free_port() -> int:
    # runserver takes a port, not a socket: ask the kernel for one that is free now.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_migrates_and_runs_with_nothing_configured(tmp_path: Path):
    env = base_env(tmp_path / "data", None)
    manage(env, "migrate", "--no-input")
    key = tmp_path / "data" / "secret_key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) >= 50
    with sqlite3.connect(tmp_path / "data" / "kolejka.db") as database:
        assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "kolejka-server"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/v1/schema/", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        assert answer.status_code == 200 and "openapi" in answer.text
        # DEBUG is off: an error page says nothing about the code.
        missing = requests.get(f"http://127.0.0.1:{port}/nowhere", timeout=5)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    finally:
        server.terminate()
        server.wait(timeout=30)
    first = key.read_text()
    manage(env, "check")
    assert key.read_text() == first


def test_it_refuses_a_bad_setting_naming_the_variable(tmp_path: Path):
    for name, value in (
        ("KOLEJKA_LEASE_TTL", "soon"),
        ("KOLEJKA_DEBUG", "maybe"),
        ("KOLEJKA_BLOB_MAX_SIZE", "1X"),
        ("KOLEJKA_MAX_ATTEMPTS", "0"),
        ("DATABASE_URL", "mysql://db/kolejka"),
    ):
        env = base_env(tmp_path / "data", None, **{name: value})
        done = manage(env, "check", check=False)
        assert done.returncode != 0 and name in done.stderr, name


def test_it_passes_the_deploy_check_with_production_settings(tmp_path: Path):
    env = base_env(tmp_path / "data", None, KOLEJKA_HTTPS="true")
    manage(env, "migrate", "--no-input")
    done = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in done.stdout


def test_it_never_ships_a_secret_key(tmp_path: Path):
    first = base_env(tmp_path / "one", None)
    second = base_env(tmp_path / "two", None)
    for env in (first, second):
        manage(env, "migrate", "--no-input")
    assert (tmp_path / "one/secret_key").read_text() != (tmp_path / "two/secret_key").read_text()


def test_it_writes_no_file_when_its_settings_are_read(tmp_path: Path):
    env = base_env(tmp_path / "data", None)
    done = manage(env, "check", check=False)
    assert done.returncode != 0 and "kolejka.E002" in done.stderr
    assert "KOLEJKA_SECRET_KEY_FILE" in done.stderr and "kolejka-server migrate" in done.stderr
    assert not (tmp_path / "data").exists()


def test_it_shares_one_key_file_between_servers_and_names_a_missing_one(tmp_path: Path):
    key = tmp_path / "grid-key"
    key.write_text("k" * 64 + "\n")
    for data in ("one", "two"):
        env = base_env(tmp_path / data, None, KOLEJKA_SECRET_KEY_FILE=str(key))
        manage(env, "migrate", "--no-input")
        shown = manage(
            env, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"
        )
        assert shown.stdout.strip().splitlines()[-1] == "k" * 64
        assert not (tmp_path / data / "secret_key").exists()
    env = base_env(tmp_path / "three", None, KOLEJKA_SECRET_KEY_FILE=str(tmp_path / "nowhere"))
    done = manage(env, "check", check=False)
    assert done.returncode != 0 and "KOLEJKA_SECRET_KEY_FILE" in done.stderr
    assert "Traceback" not in done.stderr
