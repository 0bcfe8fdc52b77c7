"""Browser tests of the web board: Debian's Chromium (never a downloaded browser) driven by
Playwright, against real server, observer and foreman processes. Each page a test visits is
saved as a screenshot in ``KOLEJKA_SCREENSHOTS`` (default: build/screenshots in the checkout),
which the test run names at its end."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..client.live import PASSWORD, LiveServer, live_server
from ..foreman.conftest import make_grid  # noqa: F401  (the foreman tests' grid of real processes)
from ..server.conftest import templates  # noqa: F401  (the server tests' migrated databases)

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).parents[2]
SHOTS = Path(os.environ.get("KOLEJKA_SCREENSHOTS") or ROOT / "build" / "screenshots")
TIMEOUT = 60_000  # ms: what a page may take to show a change on a busy machine
_taken: list[Path] = []


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # As root Chromium runs only without its sandbox; the pages are our own.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Board:
    """A signed-in user's browser on the board of `server`."""

    def __init__(self, server: LiveServer, page: Page, test: str) -> None:
        self.server = server
        self.page = page
        self.test = test

    def open(self, path: str = "/board/") -> Page:
        self.page.goto(self.server.url + path)
        return self.page

    def shot(self, name: str) -> Path:
        """Save what the page shows now as ``TEST-NAME.png``."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.test}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        _taken.append(path)
        return path


@pytest.fixture
def sign_in(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Board]]:
    """``sign_in(server, "alice")``: a fresh browser context signed in through the login page."""
    contexts = []
    test = re.sub(r"^test_it_", "", request.node.name)

    def make(server: LiveServer, user: str) -> Board:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT)
        contexts.append(context)
        page = context.new_page()
        page.goto(server.url + "/board/")
        assert "/board/login/" in page.url, "the board let a signed-out browser in"
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/board/")
        return Board(server, page, test)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server alone, for pages that need no task to run."""
    with live_server(tmp_path / "server") as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _taken:
        terminalreporter.write_line(f"board screenshots ({len(_taken)}): {SHOTS}")
