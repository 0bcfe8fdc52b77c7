"""The web board in a real browser: signing in, a task moving from Queued to Done without a
reload, its log (live while it runs), cancelling a running task, draining a node, and what
another user sees."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from kolejka.client import TaskState
from kolejka.common import Status, Task

from ..client.live import StandInForeman, new_tag, wait_for


def submit(grid, tmp_path, name, args, **fields):
    return grid.client().submit(grid.task(tmp_path / name, args, **fields)).key


def test_it_shows_a_task_move_from_queued_to_done_live_and_its_log(make_grid, sign_in, tmp_path):
    grid = make_grid()
    board = sign_in(grid.server, "alice")
    page = board.open()
    # Set on the page as it is: a reload would lose it.
    page.evaluate("window.notReloaded = true")
    key = submit(
        grid, tmp_path, "hello", ["sh", "-c", "echo hello from the board"], stdout="out.txt"
    )
    card = page.locator(f"#column-queued #card-{key}")
    expect(card).to_be_visible()
    board.shot("queued")
    grid.foreman("node-a")
    expect(page.locator(f"#column-done #card-{key}")).to_be_visible()
    expect(page.locator(f"#card-{key} .verdict-OK")).to_have_text("OK")
    assert page.evaluate("window.notReloaded") is True, "the board reloaded instead of updating"
    board.shot("done")
    page.click(f"#card-{key}")
    expect(page.locator("#task-state")).to_have_text("done")
    expect(page.locator("#log-stdout")).to_have_text("hello from the board\n")
    expect(page.locator("#attempts")).to_contain_text("node-a")
    board.shot("task")


def test_it_tails_a_running_tasks_log_and_cancels_it_from_its_page(make_grid, sign_in, tmp_path):
    grid = make_grid()
    grid.foreman("node-a")
    script = "echo first line; sleep 300"
    key = submit(grid, tmp_path, "long", ["sh", "-c", script], stdout="out.txt")
    grid.wait_state(key, {TaskState.RUNNING})
    board = sign_in(grid.server, "alice")
    page = board.open(f"/board/tasks/{key}/")
    expect(page.locator("#task-state")).to_have_text("running")
    # Printed by the task while it still runs: the node streamed it, the page's poll shows it.
    expect(page.locator("#log-stdout")).to_have_text("first line\n")
    expect(page.locator("body")).not_to_contain_text("{#")  # no template text leaks
    board.shot("running")
    page.click("#cancel")
    expect(page.locator("#task-state")).to_have_text("cancelled")
    expect(page.locator("#log-stdout")).to_have_text("first line\n")
    expect(page.locator("#cancel")).to_have_count(0)
    expect(page.locator("#retry")).to_be_visible()
    expect(page.locator("#rejudge")).to_be_visible()
    assert grid.client().task(key).state is TaskState.CANCELLED
    board.shot("cancelled")


def test_it_lets_an_admin_drain_a_node_and_no_client(make_grid, sign_in, tmp_path):
    grid = make_grid()
    foreman = grid.foreman("node-a")
    wait_for(lambda: grid.client("ada").nodes(), "the node to register")
    admin = sign_in(grid.server, "ada")
    page = admin.open("/board/nodes/")
    row = page.locator("#node-node-a")
    expect(row.locator(".badge")).to_have_text("up")
    admin.shot("up")
    row.locator("button.drain").click()
    expect(row.locator(".badge")).to_have_text("draining")
    assert [node.draining for node in grid.client("ada").nodes()] == [True]
    admin.shot("draining")
    row.locator("button.undrain").click()
    expect(row.locator(".badge")).to_have_text("up")
    assert [node.draining for node in grid.client("ada").nodes()] == [False]

    client = sign_in(grid.server, "alice")
    page = client.open("/board/nodes/")
    expect(page.locator("#node-node-a")).to_be_visible()
    expect(page.locator("#node-node-a button")).to_have_count(0)
    client.shot("client")
    # Nor can she press the button the page does not show, with her session and its CSRF token.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    refused = requests.post(
        grid.server.url + "/board/nodes/node-a/drain/",
        data={"drain": "1", "csrfmiddlewaretoken": cookies["csrftoken"]},
        cookies=cookies,
        headers={"Referer": grid.server.url + "/board/nodes/"},
        timeout=60,
    )
    assert refused.status_code == 403, refused.text
    assert [node.draining for node in grid.client("ada").nodes()] == [False]
    assert foreman.process.poll() is None


def test_it_shows_a_second_user_none_of_the_first_users_tasks(server, sign_in, tmp_path):
    alice = server.client("alice")
    # Tasks no node takes: the test has no foreman.
    spec = Task.from_dict({"image": "kolejka/busybox:latest", "args": ["true"], "requires": ["x"]})
    keys = [alice.submit(spec).key for _ in range(3)]
    mine = sign_in(server, "alice")
    expect(mine.open().locator("#column-queued .count")).to_have_text("3")
    bob = sign_in(server, "bob")
    page = bob.open()
    for column in ("queued", "running", "done"):
        expect(page.locator(f"#column-{column} .count")).to_have_text("0")
    expect(page.locator(".card")).to_have_count(0)
    bob.shot("board")
    answer = page.goto(f"{server.url}/board/tasks/{keys[0]}/")
    assert answer is not None and answer.status == 404
    bob.shot("not-found")


def test_it_shows_a_batch_fill_its_progress_bar_live(server, sign_in, tmp_path):
    tag = new_tag()
    node = StandInForeman(server, tag)
    spec = Task.from_dict({"image": "kolejka/busybox:latest", "args": ["true"], "requires": [tag]})
    batch = server.client("alice").submit_batch([spec] * 4).batch
    board = sign_in(server, "alice")
    page = board.open("/board/batches/")
    shown = page.locator(f"#batch-{batch}")
    expect(shown.locator(".legend.queued")).to_have_text("queued 4")
    node.run(tmp_path / "first")
    node.run(tmp_path / "second", status=Status.TIME_LIMIT, code=137)
    expect(shown.locator(".legend.done")).to_have_text("done 2")
    expect(shown.locator(".verdict-OK")).to_have_text("OK 1")
    expect(shown.locator(".verdict-TIME_LIMIT")).to_have_text("TIME_LIMIT 1")
    expect(shown.locator(".meta")).to_contain_text("2 of 4 final")
    running = node.claim()
    assert running.lease is not None
    node.client.heartbeat(running.lease, running=True)
    expect(shown.locator(".legend.running")).to_have_text("running 1")
    board.shot("batches")
    page.click(f"#batch-{batch} h2 a")
    expect(page.locator(".card")).to_have_count(4)
    for column, count in (("queued", "1"), ("running", "1"), ("done", "2")):
        expect(page.locator(f"#column-{column} .count")).to_have_text(count)
    board.shot("batch-tasks")
