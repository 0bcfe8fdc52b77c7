"""The web board's figures under the production server: how soon a task's change shows on an
open board in Chromium (the result accepted → its card in the Done column), and the server's
CPU with 50 open boards, idle and while tasks finish (and with none, for the baseline). Prints
JSON.

The 50 boards are pollers that do exactly what the page's htmx does (`--pages`: real Chromium
pages instead): each signed in with its own session, asking ``/board/columns/`` every
``KOLEJKA_BOARD_POLL`` with the token of what it shows, and taking the new fragment's token when
the answer is not 204.

    .venv/bin/python bench/board.py [--backend sqlite|postgres] [--boards 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import threading
import time

import psutil
import requests
from _servers import BACKENDS, Server, percentile, servers
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.server.flows import claim, finish, register, submit
from tests.server.harness import PASSWORD

NODE = "bench-node"
# The moment (the machine's clock, ms) the page's DOM first holds `selector`, taken in the page
# itself so that the figure has none of the test driver's own delays.
WATCH = """selector => {
    window.seenAt = undefined;
    const observer = new MutationObserver(() => {
        if (document.querySelector(selector)) { window.seenAt = Date.now(); observer.disconnect(); }
    });
    observer.observe(document.body, {childList: true, subtree: true});
}"""
TOKEN = re.compile(r'id="columns"[^>]*data-token="(\w+)"')


def signed_in(server: Server, user: str) -> requests.Session:
    session = requests.Session()
    session.get(server.url + "/board/login/", timeout=60)
    answer = session.post(
        server.url + "/board/login/",
        data={
            "username": user,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=60,
    )
    assert answer.status_code == 200 and "/board/login/" not in answer.url, answer.text[:300]
    return session


def finish_one(server: Server) -> str:
    """Queue a task of alice's, claim it as fred's node and report its result; its key."""
    key = submit(server.api("alice"))["key"]
    got = claim(server.api("fred"), NODE, wait=10)
    assert got["task"]["key"] == key, got
    finish(server.api("fred"), got["lease"]["id"])
    return str(key)


def page_signed_in(server: Server, browser: Browser) -> tuple[BrowserContext, Page]:
    """A browser context of its own with alice signed in, on her board."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/board/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/board/")
    return context, page


def latency(server: Server, browser: Browser, samples: int, period: float) -> dict[str, float]:
    """Milliseconds from a result's acceptance (its POST answered) to the task's card in the
    Done column of a board's DOM in Chromium."""
    context, page = page_signed_in(server, browser)
    seen, posts = [], []
    fred = server.api("fred")
    for _ in range(samples):
        key = submit(server.api("alice"))["key"]
        got = claim(fred, NODE, wait=10)
        assert got["task"]["key"] == key, got
        page.wait_for_selector(f"#column-running #card-{key}", timeout=60_000)
        # The change comes at a random moment of the page's polling period, as changes do.
        time.sleep(random.uniform(0, period))
        page.evaluate(WATCH, f"#column-done #card-{key}")
        posted = time.time()
        finish(fred, got["lease"]["id"])
        accepted = time.time()
        page.wait_for_function("window.seenAt !== undefined", timeout=60_000)
        seen.append(page.evaluate("window.seenAt") - accepted * 1000)
        posts.append((accepted - posted) * 1000)
    context.close()
    return {
        "samples": samples,
        "p50_ms": round(percentile(seen, 0.5)),
        "p95_ms": round(percentile(seen, 0.95)),
        "max_ms": round(max(seen)),
        "result_post_p50_ms": round(percentile(posts, 0.5)),
    }


def poller(
    server: Server,
    period: float,
    ready: threading.Semaphore,
    stop: threading.Event,
    times: list[float],
) -> None:
    """One open board, as its htmx polls; `ready` is released once it shows the board."""
    session = signed_in(server, "alice")
    page = session.get(server.url + "/board/", timeout=60)
    found = TOKEN.search(page.text)
    assert found is not None, page.text[:300]
    token = found[1]
    ready.release()
    # Each board opened at its own moment: their polls spread over the period.
    stop.wait(random.uniform(0, period))
    while not stop.wait(period):
        start = time.perf_counter()
        answer = session.get(server.url + "/board/columns/", params={"token": token}, timeout=60)
        times.append(time.perf_counter() - start)
        if answer.status_code == 200:
            fresh = TOKEN.search(answer.text)
            assert fresh is not None, answer.text[:300]
            token = fresh[1]
        else:
            assert answer.status_code == 204, answer.status_code


def server_cpu(server: Server) -> float:
    assert server.pid is not None
    main = psutil.Process(server.pid)
    total = 0.0
    for process in [main, *main.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def load(
    server: Server, boards: int, seconds: float, period: float, busy: bool, browser: Browser | None
) -> dict[str, float]:
    """Server CPU (percent of one core) and poll times with `boards` open boards polling every
    `period` s for `seconds`; `busy`: a task finishes every second meanwhile, so that every
    board renders anew."""
    stop, ready = threading.Event(), threading.Semaphore(0)
    times: list[float] = []
    threads, contexts = [], []
    if browser is None:
        threads = [
            threading.Thread(target=poller, args=(server, period, ready, stop, times), daemon=True)
            for _ in range(boards)
        ]
        for thread in threads:
            thread.start()
        # Signing in (a password hash each) is no part of what an open board costs.
        for _ in threads:
            assert ready.acquire(timeout=600), "a board did not open in 10 minutes"
    else:
        for _ in range(boards):
            context, _ = page_signed_in(server, browser)
            contexts.append(context)
    time.sleep(2 * period)  # every board polls by now
    times.clear()
    before, start = server_cpu(server), time.monotonic()
    finished = 0
    while time.monotonic() - start < seconds:
        if busy:
            finish_one(server)
            finished += 1
        time.sleep(1)
    cpu = (server_cpu(server) - before) / (time.monotonic() - start) * 100
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    for context in contexts:
        context.close()
    figures: dict[str, float] = {
        "server_cpu_percent_of_a_core": round(cpu, 1),
        # Other work on the machine makes every figure noisier: its load, as it was.
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    if busy:
        figures["tasks_finished"] = finished
    if times:
        figures["polls"] = len(times)
        figures["poll_p50_ms"] = round(percentile(times, 0.5) * 1000, 1)
        figures["poll_p95_ms"] = round(percentile(times, 0.95) * 1000, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--boards", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--samples", type=int, default=20, help="latencies measured")
    parser.add_argument("--poll", type=float, default=1.0, help="KOLEJKA_BOARD_POLL, seconds")
    parser.add_argument("--pages", action="store_true", help="real Chromium pages as the boards")
    args = parser.parse_args()
    figures: dict[str, object] = {"backend": args.backend, "boards": args.boards}
    figures["boards_are"] = "chromium pages" if args.pages else "pollers doing what the page does"
    settings = {"KOLEJKA_BOARD_POLL": f"{args.poll}s"}
    with servers((args.backend,), **settings) as running, sync_playwright() as playwright:
        server = running[args.backend]
        register(server.api("fred"), NODE, slots=1000)
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        figures["poll_period_s"] = args.poll
        figures["update_latency"] = latency(server, browser, args.samples, args.poll)
        shown = browser if args.pages else None
        figures["no_boards"] = load(server, 0, args.seconds, args.poll, False, None)
        for name, busy in (("idle", False), ("busy", True)):
            figures[name] = load(server, args.boards, args.seconds, args.poll, busy, shown)
        browser.close()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
