"""Clients and nodes install kolejka without the server's packages (the ``server`` extra), and
every module of theirs imports without them."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("django", "rest_framework", "drf_spectacular", "gunicorn", "psycopg", "whitenoise")
BLOCK = """
import importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is the server's")
sys.meta_path.insert(0, Block())
import kolejka
for package in ("common", "client", "worker", "observer", "foreman"):
    module = __import__(f"kolejka.{package}", fromlist=["*"])
    for info in pkgutil.walk_packages(module.__path__, f"kolejka.{package}."):
        __import__(info.name)
        print(info.name)
"""


def requirement_names(text: str) -> set[str]:
    lines = [line.strip() for line in text.splitlines()]
    return {re.split(r"[\s\[<>=!~]", line, maxsplit=1)[0].lower() for line in lines if line}


def test_it_installs_no_server_package_for_clients_and_nodes():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    base = requirement_names(setup["options"]["install_requires"])
    server = requirement_names(setup["options.extras_require"]["server"])
    assert not base & {"django", "djangorestframework", "drf-spectacular", "gunicorn"}
    assert not any(name.startswith(("psycopg", "whitenoise", "django")) for name in base)
    assert {"django", "djangorestframework", "gunicorn", "psycopg", "whitenoise"} <= server


def test_it_imports_every_client_and_node_module_without_the_server_packages():
    done = subprocess.run(
        [sys.executable, "-c", BLOCK, ",".join(SERVER_ONLY)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported = done.stdout.split()
    assert "kolejka.client.cli" in imported and "kolejka.foreman.cli" in imported
    assert "kolejka.worker.cli" in imported and "kolejka.observer.cli" in imported
