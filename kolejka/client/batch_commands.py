"""The ``kolejka-client batch`` subcommands: task arrays from a template and a parameters file,
their progress, re-runs, results, cancelling and purging. One function each, its docstring its
help, as in `commands`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kolejka.common import Status

from . import params
from .commands import _client, about, ordering_arguments
from .errors import ClientError
from .exits import PLATFORM, SUCCESS, TASK_FAILURE
from .models import BatchProgress
from .output import Output, table, when

if TYPE_CHECKING:
    from tqdm import tqdm

# How often `batch wait` asks for the batch's progress.
POLL = 1.0


class WaitTimedOut(ClientError):
    """The batch did not finish within --timeout."""

    exit_code = PLATFORM


def _bar(out: Output, live: bool, unit: str, total: int | None = None) -> tqdm[Any]:
    """A progress bar on stderr, drawn only when `live` (tqdm is imported here, for the
    commands that draw one: it costs the others ~5 ms)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=out.stderr, disable=not live, dynamic_ncols=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"


def _counts(counts: dict[str, int]) -> str:
    shown = [f"{name} {n}" for name, n in sorted(counts.items()) if n]
    return ", ".join(shown) or "-"


def _document(progress: BatchProgress, now: datetime) -> dict[str, object]:
    return {
        **progress.raw,
        "final": progress.final,
        "percent": round(progress.percent, 2),
        "elapsed": progress.elapsed(now),
        "eta": progress.eta(now),
    }


def _succeeded(progress: BatchProgress) -> bool:
    return progress.final == progress.total and progress.verdicts.get("OK", 0) == progress.total


def batch_submit(args: argparse.Namespace, out: Output) -> int:
    """Submit a task array: TEMPLATE_DIR's task once for each row of PARAMS (or --range).

    PARAMS is a JSON list of objects, a YAML list of mappings, a CSV file with a header line or
    a JSON-lines file (by its suffix). {name} in the task's args, environment values, file names
    and paths, stdin, stdout, stderr and id is replaced by the row's value ({{ and }} are
    braces); --range 1-2000 gives rows with {i} from 1 to 2000. Every row's task is checked
    before anything is sent; the batch runs once all of it is on the server. Prints its key.
    --after makes every task wait for a task or batch; a row's "after" column adds its own
    ([WHEN:]KEY or [WHEN:]#N for the batch's row N, 0 for the first; space-separated).
    """
    if (args.params is None) == (args.range is None):
        raise params.ParamsError("give a PARAMS file or --range FIRST-LAST, not both or neither")
    rows = (
        params.range_rows(args.range)
        if args.range is not None
        else params.read_rows(Path(args.params))
    )
    template = params.Template(Path(args.template_dir))
    tasks = list(params.tasks(template, rows))
    # A row's own dependencies: its "after" column, [WHEN:]KEY or [WHEN:]#ROW, space-separated.
    each_after = [row.get("after", "").split() for row in rows]
    client = _client(args, out)
    with about(args.template_dir):
        key = client.submit_array(
            tasks,
            args.template_dir,
            priority=args.priority,
            rank=args.rank,
            after=args.after or (),
            each_after=each_after if any(each_after) else None,
        )
    out.data({"batch": key, "total": len(tasks)}, key)
    return SUCCESS


def batch_list(args: argparse.Namespace, out: Output) -> int:
    """List your batches, newest first."""
    found = list(_client(args, out).batches(state=args.state, limit=args.limit))
    rows = [["BATCH", "STATE", "TASKS", "CREATED"]] + [
        [item.batch, item.state, str(item.total), when(item.created)] for item in found
    ]
    out.data([dict(item.raw) for item in found], table(rows) if found else "no batches")
    return SUCCESS


def batch_status(args: argparse.Namespace, out: Output) -> int:
    """Show a batch's progress: percent done, tasks by state and by verdict, time, ETA."""
    with about(f"batch {args.key}"):
        progress = _client(args, out).batch(args.key)
    now = datetime.now(UTC)
    lines = [
        f"batch     {progress.batch}",
        f"state     {progress.state}",
        f"progress  {progress.final}/{progress.total} ({progress.percent:.1f}%)",
        f"states    {_counts(progress.states)}",
        f"verdicts  {_counts(progress.verdicts)}",
        f"running   {_duration(progress.elapsed(now))}",
        f"eta       {_duration(progress.eta(now)) if progress.final < progress.total else '-'}",
    ]
    out.data(_document(progress, now), "\n".join(lines))
    return SUCCESS


def batch_wait(args: argparse.Namespace, out: Output) -> int:
    """Wait until every task of a batch is finished, with a progress bar on a terminal (with
    --json: a JSON line per change). Exits 0 when all ended with an OK verdict, 1 otherwise."""
    client = _client(args, out)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    live = not out.json_mode and not out.quiet and out.stderr.isatty()
    bar = _bar(out, live, "task", total=0)
    last: tuple[object, ...] | None = None
    try:
        while True:
            with about(f"batch {args.key}"):
                progress = client.batch(args.key)
            seen = (progress.total, tuple(sorted(progress.states.items())))
            if seen != last:
                last = seen
                bar.total = progress.total
                bar.n = progress.final
                bar.set_postfix_str(_counts(progress.verdicts), refresh=True)
                if out.json_mode:
                    line = json.dumps(_document(progress, datetime.now(UTC)), sort_keys=True)
                    out.stdout.write(line + "\n")
                    out.stdout.flush()
                elif not live:
                    out.message(
                        f"{progress.batch}: {progress.final}/{progress.total} "
                        f"({progress.percent:.1f}%); {_counts(progress.verdicts)}"
                    )
            if progress.state == "sealed" and progress.final == progress.total:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(
                    f"batch {args.key}: {progress.total - progress.final} tasks are not "
                    f"finished after {args.timeout:g} s"
                )
            time.sleep(POLL)
    finally:
        bar.close()
    return SUCCESS if _succeeded(progress) else TASK_FAILURE


def batch_retry(args: argparse.Namespace, out: Output) -> int:
    """Run finished tasks of a batch again in place: the same keys, a new attempt, the earlier
    run kept in each task's history. --failed: every task that did not end with an OK verdict;
    --all: every finished task; --verdict V: the tasks with verdict V (repeat for several)."""
    which = "verdict" if args.verdict else "all" if args.all else "failed"
    with about(f"batch {args.key}"):
        changed = _client(args, out).rerun_batch(args.key, which, args.verdict or ())
    out.data({"batch": args.key, "changed": changed}, f"{args.key}: {changed} tasks queued again")
    return SUCCESS


def batch_rejudge(args: argparse.Namespace, out: Output) -> int:
    """Judge every finished task of a batch again in place, whatever its verdict (as
    batch retry --all): the earlier runs stay in each task's history."""
    with about(f"batch {args.key}"):
        changed = _client(args, out).rerun_batch(args.key, "all")
    out.data({"batch": args.key, "changed": changed}, f"{args.key}: {changed} tasks queued again")
    return SUCCESS


def batch_prio(args: argparse.Namespace, out: Output) -> int:
    """Move every unfinished task of a batch within your own queue (RANK, higher first; never
    before other users' tasks)."""
    with about(f"batch {args.key}"):
        changed = _client(args, out).set_batch_rank(args.key, args.rank)
    out.data(
        {"batch": args.key, "changed": changed}, f"{args.key}: {changed} tasks at rank {args.rank}"
    )
    return SUCCESS


def batch_get(args: argparse.Namespace, out: Output) -> int:
    """Write every result of a batch into DIR/<position>/ (its row: 0 for the first).

    Several results are fetched at once, the small files of many in one request. Results
    already in DIR are not fetched again, so an interrupted get goes on where it stopped.
    Exits 0 when every task's result is in DIR, 1 when some have none (not done yet, failed).
    """
    client = _client(args, out)
    live = not out.json_mode and not out.quiet and out.stderr.isatty()
    with (
        _bar(out, live, "result") as bar,
        about(f"batch {args.key}"),
    ):
        fetched = client.fetch_batch(
            args.key, args.folder, workers=args.workers, on_task=lambda: bar.update(1)
        )
    folder = str(Path(args.folder).resolve())
    document = {
        "batch": args.key,
        "folder": folder,
        "written": fetched.written,
        "kept": fetched.kept,
        "missing": fetched.missing,
    }
    text = f"{fetched.written + fetched.kept} results in {folder} ({fetched.kept} already there)"
    if fetched.missing:
        states: dict[str, int] = {}
        for state in fetched.missing.values():
            states[state] = states.get(state, 0) + 1
        text += f"; {len(fetched.missing)} tasks have no result: {_counts(states)}"
    out.data(document, text)
    return TASK_FAILURE if fetched.missing else SUCCESS


def batch_cancel(args: argparse.Namespace, out: Output) -> int:
    """Cancel every unfinished task of a batch; running ones are killed on their nodes."""
    with about(f"batch {args.key}"):
        changed = _client(args, out).cancel_batch(args.key)
    out.data({"batch": args.key, "changed": changed}, f"{args.key}: {changed} tasks cancelled")
    return SUCCESS


def batch_purge(args: argparse.Namespace, out: Output) -> int:
    """Delete a batch, its tasks and their results (an open batch too). The files only they
    used are deleted by the server's next garbage collection."""
    with about(f"batch {args.key}"):
        _client(args, out).purge_batch(args.key)
    out.data({"batch": args.key, "purged": True}, f"{args.key}: purged")
    return SUCCESS


def add_parsers(
    top: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Callable[..., argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """The ``batch`` command and its subcommands; `command` makes one (`cli._command`)."""
    batch = top.add_parser("batch", help="task arrays: submit, watch, retry, fetch, purge")
    group = batch.add_subparsers(title="commands", metavar="COMMAND", required=True)
    submit = command(group, "submit", batch_submit, common)
    submit.add_argument("template_dir", metavar="TEMPLATE_DIR")
    submit.add_argument("params", metavar="PARAMS", nargs="?", help=".json .yaml .csv .jsonl")
    submit.add_argument("--range", metavar="FIRST-LAST", help="rows {i} = FIRST..LAST")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (admins: >0)")
    ordering_arguments(submit)
    listing = command(group, "list", batch_list, common)
    listing.add_argument("--state", choices=["open", "sealed"], help="only batches in this state")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    for name, function in (("status", batch_status), ("cancel", batch_cancel),
                           ("purge", batch_purge), ("rejudge", batch_rejudge)):  # fmt: skip
        command(group, name, function, common).add_argument("key", metavar="BATCH")
    wait = command(group, "wait", batch_wait, common)
    wait.add_argument("key", metavar="BATCH")
    wait.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    retry = command(group, "retry", batch_retry, common)
    retry.add_argument("key", metavar="BATCH")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="tasks without an OK verdict")
    which.add_argument("--all", action="store_true", help="every finished task")
    which.add_argument(
        "--verdict",
        action="append",
        metavar="V",
        choices=[str(status) for status in Status],
        help="tasks with verdict V: OK, RUNTIME_ERROR, TIME_LIMIT, ... (repeat for several)",
    )
    prio = command(group, "prio", batch_prio, common)
    prio.add_argument("key", metavar="BATCH")
    prio.add_argument("rank", metavar="RANK", type=int)
    get = command(group, "get", batch_get, common)
    get.add_argument("key", metavar="BATCH")
    get.add_argument("folder", metavar="DIR")
    get.add_argument("--workers", type=int, default=8, metavar="N", help="fetches at once (8)")
