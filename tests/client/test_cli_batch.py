"""``kolejka-client batch`` against a real server, with stand-in foremen running the tasks: a
task array from a parameters file runs each row once, its results come back, failed rows run
again in place, a purge leaves nothing; bad parameters files are one-line errors."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from kolejka.common import Result, Status, save_result

from .live import StandInForeman
from .test_cli_commands import one_line_error

ROWS = 2000


def template(folder: Path, tag: str, **fields: object) -> Path:
    """A task template: each row's task echoes its word, named by its number."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in.txt").write_text("shared input\n")
    document = {
        "id": "row-{n}",
        "image": "kolejka/busybox:latest",
        "args": ["echo", "{word}"],
        "environment": {"ROW": "{n}"},
        "requires": [tag],
        "files": {"in.txt": "in.txt"},
        "stdout": "out-{n}.txt",
        **fields,
    }
    (folder / "kolejka_task.json").write_text(json.dumps(document))
    return folder


def work(foremen: list[StandInForeman], folder: Path, fails: set[str]) -> Counter[str]:
    """Run every queued task of the test on `foremen` at once, as a foreman would: its output is
    its row's word; rows in `fails` end with RUNTIME_ERROR. How often each row ran."""
    ran: Counter[str] = Counter()
    lock = threading.Lock()

    def loop(foreman: StandInForeman) -> None:
        while True:
            claim = foreman.client.claim(foreman.name, foreman.free, idle=True, wait=0)
            if claim.task is None or claim.lease is None:
                return
            spec = claim.task.task
            assert spec is not None and spec.id is not None
            row = spec.id
            with lock:
                ran[row] += 1
            out = folder / foreman.name / row
            out.mkdir(parents=True, exist_ok=True)
            name = spec.stdout or "out.txt"
            (out / name).write_text(f"{spec.args[1]} {spec.environment['ROW']}\n")
            failed = row in fails
            result = Result.from_dict(
                {
                    "id": row,
                    "result": 1 if failed else 0,
                    "status": str(Status.RUNTIME_ERROR if failed else Status.OK),
                    "files": {name: {"path": name}},
                    "stats": {"time": "0.01s"},
                }
            )
            save_result(result, out)
            foreman.client.post_result(claim.lease, result, out)

    threads = [threading.Thread(target=loop, args=(foreman,)) for foreman in foremen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ran


def test_it_runs_a_csv_array_once_per_row_fetches_every_result_and_reruns_the_failed(
    cli, server, tag, tmp_path
):
    task = template(tmp_path / "template", tag)
    table = tmp_path / "rows.csv"
    table.write_text("n,word\n" + "".join(f"{n},word{n}\n" for n in range(ROWS)))
    submitted = cli("batch", "submit", "--json", str(task), str(table))
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)["batch"]
    assert json.loads(submitted.stdout)["total"] == ROWS

    foremen = [StandInForeman(server, tag, f"node-{tag}-{n}") for n in range(4)]
    fails = {f"row-{n}" for n in range(0, ROWS, 100)}
    ran = work(foremen, tmp_path / "runs", fails)
    assert ran == Counter({f"row-{n}": 1 for n in range(ROWS)})

    status = json.loads(cli("batch", "status", "--json", batch).stdout)
    assert status["percent"] == 100 and status["states"]["done"] == ROWS
    assert status["verdicts"] == {"OK": ROWS - len(fails), "RUNTIME_ERROR": len(fails)}
    waited = cli("batch", "wait", "--json", batch)
    assert waited.returncode == 1, waited.stderr  # not every verdict is OK
    assert json.loads(waited.stdout.splitlines()[-1])["final"] == ROWS

    results = tmp_path / "results"
    got = cli("batch", "get", "--json", batch, str(results))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["written"] == ROWS
    for n in range(ROWS):
        folder = results / f"{n:04d}"
        assert (folder / f"out-{n}.txt").read_text() == f"word{n} {n}\n"
        assert json.loads((folder / "kolejka_result.json").read_text())["id"] == f"row-{n}"

    alice = server.client("alice")
    keys = {info.task.id: info.key for info in alice.batch_tasks(batch) if info.task}
    retried = cli("batch", "retry", "--failed", "--json", batch)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["changed"] == len(fails)
    again = work(foremen, tmp_path / "again", set())
    assert again == Counter(dict.fromkeys(fails, 1))
    for info in alice.batch_tasks(batch):
        assert info.task is not None and keys[info.task.id] == info.key  # in place
        if info.task.id in fails:
            assert info.history[0]["result"]["status"] == "RUNTIME_ERROR"
            assert info.attempts == 2 and info.result is not None
        else:
            assert info.history == [] and info.attempts == 1
    assert cli("batch", "wait", batch).returncode == 0

    resumed = json.loads(cli("batch", "get", "--json", batch, str(results)).stdout)
    assert (resumed["written"], resumed["kept"]) == (len(fails), ROWS - len(fails))

    purged = cli("batch", "purge", batch)
    assert purged.returncode == 0, purged.stderr
    one_line_error(cli("batch", "status", batch), 2, f"batch {batch}: no such batch")
    assert list(alice.tasks(batch=batch)) == []
    assert batch not in cli("batch", "list").stdout


def test_it_submits_a_range_and_yaml_json_and_json_lines_rows(cli, server, tag, tmp_path):
    task = template(tmp_path / "template", tag, args=["echo", "{n}"])
    by_range = template(tmp_path / "by-range", tag, id="row-{i}", args=["echo", "{i}"],
                        environment={}, stdout="out.txt")  # fmt: skip
    yaml_rows = tmp_path / "rows.yaml"
    yaml_rows.write_text("- {n: 1, word: a}\n- {n: 2, word: b}\n")
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"n": 7, "word": "x"}\n\n{"n": 8, "word": "y"}\n')
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps([{"n": 9}]))
    alice = server.client("alice")
    for args, ids in (
        ([str(by_range), "--range", "3-5"], ["row-3", "row-4", "row-5"]),
        ([str(task), str(yaml_rows)], ["row-1", "row-2"]),
        ([str(task), str(lines)], ["row-7", "row-8"]),
        ([str(task), str(as_json)], ["row-9"]),
    ):
        done = cli("batch", "submit", *args)
        assert done.returncode == 0, done.stderr
        batch = done.stdout.strip()
        infos = sorted(alice.batch_tasks(batch), key=lambda info: info.position or 0)
        assert [info.task.id for info in infos if info.task] == ids
        assert alice.batch(batch).states["queued"] == len(ids)
        assert alice.cancel_batch(batch) == len(ids)


@pytest.mark.parametrize(
    ("name", "content", "parts"),
    [
        ("rows.txt", "n\n1\n", ["unknown kind of parameters file"]),
        ("rows.json", "[{", ["rows.json: line 1: not JSON"]),
        ("rows.json", '{"n": 1}', ["must hold a list of rows"]),
        ("rows.json", "[]", ["holds no rows"]),
        ("rows.jsonl", '{"n": 1}\n[1]\n', ["line 2: a row must be an object"]),
        ("rows.csv", "n,word\n1,a\n2\n", ["line 3: has not as many values as the header"]),
        ("rows.csv", "n,n\n1,2\n", ["the header needs distinct, non-empty names"]),
        ("rows.yaml", "- n: [1\n", ["not YAML"]),
        ("rows.yaml", "- {n: {a: 1}}\n", ["row 0.n: a value must be a string or a number"]),
        ("rows.csv", "n\n1\n", ["row 0: args[1]: {word} names no parameter (known: n)"]),
        ("missing.csv", None, ["missing.csv: cannot read it"]),
    ],
)
def test_it_refuses_a_bad_parameters_file_in_one_line(cli, tag, tmp_path, name, content, parts):
    task = template(tmp_path / "template", tag)
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    one_line_error(cli("batch", "submit", str(task), str(path), user="carol"), 2, *parts)
    assert cli("batch", "list", user="carol").stdout.strip() == "no batches"


def test_it_refuses_a_row_whose_file_is_missing_before_sending_anything(cli, tag, tmp_path):
    task = template(tmp_path / "template", tag, files={"in.txt": "tests/{n}.in"})
    (task / "tests").mkdir()
    (task / "tests" / "1.in").write_text("one\n")
    rows = tmp_path / "rows.csv"
    rows.write_text("n,word\n1,a\n2,b\n")
    one_line_error(cli("batch", "submit", str(task), str(rows), user="carol"), 2,
                   "row 1: files.in.txt.path", "tests/2.in")  # fmt: skip
    one_line_error(cli("batch", "submit", str(task), user="carol"), 2, "--range")
    assert cli("batch", "list", user="carol").stdout.strip() == "no batches"
