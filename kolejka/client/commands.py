"""The subcommands of ``kolejka-client``: one function each, its docstring its help. Each takes
the parsed arguments and the `Output`, and returns the exit status (`exits`)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from kolejka.common import Result, SpecError, Status
from kolejka.common.states import TaskState

from .client import KolejkaClient
from .config import Settings, forget_login, load_settings, store_login
from .errors import ApiError, AuthenticationFailed, ClientError, Conflict, NotFinished
from .exits import CANCELLED, INTERRUPTED, PLATFORM, SUCCESS, TASK_FAILURE
from .models import Delivery, Node, NodeVerdict, TaskInfo, Why
from .output import Output, describe_state, table, when

Interrupt = Literal["ask", "cancel", "leave"]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        server=getattr(args, "server", None),
        username=getattr(args, "username", None),
        password=getattr(args, "password", None),
        token=getattr(args, "token", None),
    )


def _client(args: argparse.Namespace, out: Output) -> KolejkaClient:
    options: dict[str, Any] = {"progress": out.progress()}
    if hasattr(args, "retries"):
        options["retries"] = args.retries
    return KolejkaClient.from_settings(_settings(args), **options)


@contextmanager
def about(subject: str) -> Iterator[None]:
    """Name `subject` in the message of a refusal or format error raised inside."""
    try:
        yield
    except (ApiError, SpecError) as error:
        if getattr(error, "subject", None) is None:
            setattr(error, "subject", subject)  # noqa: B010 - SpecError does not declare it
        raise


def _size(value: int | None) -> str:
    from tqdm import tqdm  # here: only the image commands show sizes

    return "-" if value is None else tqdm.format_sizeof(value, "B", 1024)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _verdict_line(key: str, result: Result) -> str:
    stats = result.stats
    return (
        f"{key}: {result.status or 'no verdict'} (exit {result.result}), "
        f"time {_seconds(stats.time)}, cpu {_seconds(stats.cpu.usage)}, "
        f"memory {_size(stats.memory.max_usage)}"
    )


def _attempt_lines(result: Result) -> list[str]:
    """The attempts of a task with a retry policy, oldest first: what each ended with, under
    which memory limit, and why the policy ran the task again."""
    return [
        f"attempt {item.attempt}: {item.status or 'no verdict'} (exit {item.result}), memory "
        f"limit {_size(item.memory)}, peak {_size(item.memory_peak)}"
        + (f"; ran again: {item.retry}" if item.retry else "")
        for item in result.attempts
    ]


def _verdict_exit(result: Result) -> int:
    if result.status == Status.OK:
        return SUCCESS
    if result.status == Status.SYSTEM_ERROR or result.status is None:
        return PLATFORM
    return TASK_FAILURE


def _ask(key: str, out: Output) -> Interrupt | Literal["wait"]:
    """Ask the person at the terminal what Ctrl-C should do; without one, leave the task."""
    if not sys.stdin.isatty():
        out.message(f"{key}: not cancelled (no terminal to ask; --cancel-on-interrupt cancels)")
        return "leave"
    out.stderr.write(
        f"Cancel task {key}? [y] cancel it, [n] leave it running and quit, [c] keep waiting: "
    )
    out.stderr.flush()
    try:
        answer = sys.stdin.readline().strip().lower()
    except KeyboardInterrupt:
        return "leave"
    if answer in ("y", "yes"):
        return "cancel"
    if answer in ("c", "continue", "w", "wait"):
        return "wait"
    return "leave"


def _wait(
    client: KolejkaClient,
    key: str,
    out: Output,
    on_interrupt: Interrupt,
    submitted: TaskInfo | None = None,
) -> TaskInfo | None:
    """Wait for the task with a live status line; `None` when Ctrl-C left it running.

    The line starts from `submitted` (the answer to the submission) when given, so that a task
    claimed at once is still shown as queued first.
    """
    status = out.status_line()
    if submitted is not None:
        status.update(submitted)
    while True:
        try:
            info = client.wait(key, on_change=status.update)
            status.end()
            return info
        except KeyboardInterrupt:
            status.end()
            choice = _ask(key, out) if on_interrupt == "ask" else on_interrupt
        if choice == "wait":
            status.steps[-1:] = []  # so that the line is drawn again at once
            continue
        if choice == "leave":
            out.message(
                f"{key} keeps running; get its result with: kolejka-client result wait {key} DIR"
            )
            return None
        try:
            client.cancel(key)
        except Conflict:
            continue  # it finished meanwhile: the wait answers at once
        out.message(f"{key}: cancelled")


def _finish(
    client: KolejkaClient, info: TaskInfo | None, folder: str | None, out: Output, key: str
) -> int:
    """Report a final task (and download its result into `folder`); return the exit status."""
    if info is None:
        out.data({"key": key, "state": None, "detached": True})
        return INTERRUPTED
    document: dict[str, Any] = {"key": info.key, "state": str(info.state), "error": info.error}
    if info.state == TaskState.FAILED:
        out.error(f"task {info.key} failed: {info.error or 'no reason given'}")
        out.data(document)
        return PLATFORM
    if info.state == TaskState.CANCELLED:
        out.data(document, f"{info.key}: cancelled")
        return CANCELLED
    if folder is not None:
        with about(f"task {info.key}"):
            result = client.fetch_result(info.key, folder)
        document["result_dir"] = str(Path(folder).resolve())
    else:
        result = info.result if info.result is not None else client.result(info.key)
    document["result"] = result.to_dict()
    out.data(document, "\n".join([_verdict_line(info.key, result), *_attempt_lines(result)]))
    return _verdict_exit(result)


def ordering_arguments(parser: argparse.ArgumentParser) -> None:
    """--after and --rank, for every command that submits."""
    parser.add_argument(
        "--after",
        action="append",
        metavar="[WHEN:]KEY",
        help="wait for this task or batch to end: ok (the default: done with an OK verdict), "
        "notok (any other way) or any, as notok:KEY (repeat for several)",
    )
    parser.add_argument(
        "--rank", type=int, default=0, help="order among your own tasks, higher first (0)"
    )


def execute(args: argparse.Namespace, out: Output) -> int:
    """Run a task folder on the grid and write its result folder.

    Uploads the files of TASK_DIR the server does not hold yet, submits the task, shows its
    state live (queued → running on NODE → done) and writes kolejka_result.json and the result
    files into RESULT_DIR. Ctrl-C asks whether to cancel the task, leave it running, or keep
    waiting; --cancel-on-interrupt cancels without asking. Without a terminal to ask on, Ctrl-C
    leaves the task running.
    """
    client = _client(args, out)
    with about(args.task_dir):
        info = client.submit(
            args.task_dir, priority=args.priority, rank=args.rank, after=args.after or ()
        )
    on_interrupt: Interrupt = "cancel" if args.cancel_on_interrupt else "ask"
    final = _wait(client, info.key, out, on_interrupt, submitted=info)
    return _finish(client, final, args.result_dir, out, info.key)


def task_put(args: argparse.Namespace, out: Output) -> int:
    """Submit a task folder and print its key (without waiting). With --after it waits, unseen
    by nodes, until those tasks or batches end: ok (done with an OK verdict), notok (any other
    way) or any; a dependency that can no longer be met cancels it."""
    client = _client(args, out)
    with about(args.task_dir):
        info = client.submit(
            args.task_dir, priority=args.priority, rank=args.rank, after=args.after or ()
        )
    out.data(dict(info.raw), info.key)
    return SUCCESS


def task_get(args: argparse.Namespace, out: Output) -> int:
    """Write a submitted task as a task folder: kolejka_task.json and its files."""
    client = _client(args, out)
    with about(f"task {args.key}"):
        task = client.fetch_task(args.key, args.folder)
    folder = str(Path(args.folder).resolve())
    out.data({"key": args.key, "folder": folder, "task": task.to_dict()}, folder)
    return SUCCESS


def task_list(args: argparse.Namespace, out: Output) -> int:
    """List your tasks, newest first."""
    client = _client(args, out)
    found: dict[str, TaskInfo] = {}
    for state in args.state or [None]:
        for info in client.tasks(state=state, batch=args.batch, owner=args.owner, limit=args.limit):
            found[info.key] = info
    newest = sorted(found.values(), key=lambda info: info.created or info.key, reverse=True)
    newest = newest[: args.limit]
    rows = [["KEY", "STATE", "NODE", "CREATED", "ID"]] + [
        [info.key, str(info.state), info.node or "-", when(info.created), _task_id(info)]
        for info in newest
    ]
    out.data([dict(info.raw) for info in newest], table(rows) if newest else "no tasks")
    return SUCCESS


def _task_id(info: TaskInfo) -> str:
    return (info.task.id if info.task else None) or "-"


def task_status(args: argparse.Namespace, out: Output) -> int:
    """Show a task's state, node, attempts and times."""
    client = _client(args, out)
    with about(f"task {args.key}"):
        info = client.task(args.key)
    lines = [
        f"key       {info.key}",
        f"state     {describe_state(info)}",
        f"id        {_task_id(info)}",
        f"owner     {info.owner or '-'}",
        f"attempts  {info.attempts} of {info.max_attempts}",
        f"created   {when(info.created)}",
        f"started   {when(info.started)}",
        f"finished  {when(info.finished)}",
    ]
    if info.state == TaskState.QUEUED:
        with about(f"task {args.key}"):
            why = client.why(args.key)
        lines += _waiting(why)
        lines += [f"node      {v.name} ({v.state}): {_verdict(v)}" for v in why.nodes]
    elif info.reason:
        lines.append(f"waiting   {info.reason}")
    if info.result is not None:
        lines.append(f"verdict   {info.result.status} (exit {info.result.result})")
        lines += _attempt_lines(info.result)
    if info.task is not None and (info.task.notify or info.task.callback_url):
        with about(f"task {args.key}"):
            sent = client.deliveries(args.key)
        lines += [f"notified  {d.event} to {d.target}: {_sent(d)}" for d in sent]
    out.data(dict(info.raw), "\n".join(lines))
    return SUCCESS


def _sent(delivery: Delivery) -> str:
    how = f"{delivery.outcome} after {delivery.attempts} attempt(s)"
    if delivery.next_try is not None:
        how += f", next {when(delivery.next_try)}"
    if not delivery.delivered and delivery.last_error:
        how += f" ({delivery.last_error})"
    return how


def task_deliveries(args: argparse.Namespace, out: Output) -> int:
    """List a task's notifications and callbacks: event, target, how each went (delivered, given
    up, or when it is tried next) and the receiver's last answer."""
    client = _client(args, out)
    with about(f"task {args.key}"):
        sent = client.deliveries(args.key)
    rows = [["EVENT", "TARGET", "OUTCOME", "ATTEMPTS", "LAST"]]
    for delivery in sent:
        last = delivery.last_error or (str(delivery.last_status or "") or "-")
        rows.append(
            [delivery.event, delivery.target, delivery.outcome, str(delivery.attempts), last]
        )
    text = table(rows) if sent else f"{args.key}: no notifications"
    out.data([dict(delivery.raw) for delivery in sent], text)
    return SUCCESS


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _waiting(why: Why) -> list[str]:
    """Where a queued task stands: its place in its owner's queue, the reason, whether any
    registered node could ever run it."""
    lines = [f"position  {_ordinal(why.position or 0)} of {why.queued} in its owner's queue"]
    if why.reason:
        lines.append(f"waiting   {why.reason}")
    if not why.nodes:
        lines.append("nodes     none is registered")
    elif why.never:
        lines.append("nodes     no registered node could ever run it")
    return lines


def _verdict(verdict: NodeVerdict) -> str:
    if verdict.takes:
        return "may take it at its next claim"
    return ("never: " if verdict.never else "") + "; ".join(verdict.why)


def task_why(args: argparse.Namespace, out: Output) -> int:
    """Say why a task waits: its place in its owner's queue and, for each registered node,
    what keeps it from taking the task now (needs cpus 2, 1 free; node lacks tags gpu:h100;
    gpu_memory 80G > 40G; node draining; node unhealthy: ...; retry spacing), or that no
    registered node could ever run it."""
    client = _client(args, out)
    with about(f"task {args.key}"):
        why = client.why(args.key)
    if why.state == TaskState.WAITING:
        text = f"{why.key}: waiting\nwaiting   {why.reason}"
    elif why.state != TaskState.QUEUED:
        where = f" on {why.node}" if why.node else ""
        text = f"{why.key} is {why.state}{where}: it does not wait in the queue"
    else:
        rows = [["NODE", "STATE", "TAKES IT", "WHY NOT"]]
        for verdict in why.nodes:
            takes = "yes" if verdict.takes else "never" if verdict.never else "not now"
            rows.append([verdict.name, verdict.state, takes, "; ".join(verdict.why) or "-"])
        text = "\n".join([f"{why.key}: queued", *_waiting(why)])
        if why.nodes:
            text += "\n\n" + table(rows)
    out.data(dict(why.raw), text)
    return SUCCESS


def task_cancel(args: argparse.Namespace, out: Output) -> int:
    """Cancel a task that has not finished; a running one is killed on its node."""
    client = _client(args, out)
    with about(f"task {args.key}"):
        info = client.cancel(args.key)
    out.data(dict(info.raw), f"{info.key}: {info.state}")
    return SUCCESS


def task_rejudge(args: argparse.Namespace, out: Output) -> int:
    """Judge a finished task again in place, whatever its verdict; earlier runs stay readable
    in its history (task status --json). Without KEY, every finished task matching all of
    --state, --verdict, --batch, --tag (and, for admins, --owner) is: at least one is needed."""
    client = _client(args, out)
    filters = (args.state, args.verdict, args.batch, args.tag, args.owner)
    if args.key is not None:
        if any(filters):
            raise ClientError("give a KEY or filters (--state, --verdict, ...), not both")
        with about(f"task {args.key}"):
            info = client.rejudge(args.key)
        out.data(dict(info.raw), f"{info.key}: {info.state}")
        return SUCCESS
    if not any(filters):
        raise ClientError("give a KEY or at least one filter (--state, --verdict, --batch, ...)")
    changed = client.rejudge_matching(
        state=args.state,
        verdicts=args.verdict or (),
        batch=args.batch,
        tag=args.tag,
        owner=args.owner,
    )
    out.data({"changed": changed}, f"{changed} tasks queued to be judged again")
    return SUCCESS


def task_prio(args: argparse.Namespace, out: Output) -> int:
    """Move a task within your own queue: a higher RANK runs before your lower ones (default
    0), never before other users' tasks."""
    client = _client(args, out)
    with about(f"task {args.key}"):
        info = client.set_rank(args.key, args.rank)
    out.data(dict(info.raw), f"{info.key}: rank {info.rank}")
    return SUCCESS


def result_get(args: argparse.Namespace, out: Output) -> int:
    """Write a finished task's result into DIR: kolejka_result.json and the result files."""
    client = _client(args, out)
    try:
        with about(f"task {args.key}"):
            result = client.fetch_result(args.key, args.folder)
    except NotFinished as error:
        detail = (
            f"task {args.key} has no result yet (it is {error.body.get('state', 'not done')}); "
            f"wait for it with 'kolejka-client result wait {args.key} {args.folder}'"
        )
        raise NotFinished(error.status, error.code, detail, None, error.body) from None
    folder = str(Path(args.folder).resolve())
    document = {"key": args.key, "result_dir": folder, "result": result.to_dict()}
    out.data(document, "\n".join([_verdict_line(args.key, result), *_attempt_lines(result)]))
    return SUCCESS


def result_wait(args: argparse.Namespace, out: Output) -> int:
    """Wait for a task to finish, showing its state live; with DIR, download its result.

    Exits as execute does. Ctrl-C stops waiting; the task keeps running.
    """
    client = _client(args, out)
    with about(f"task {args.key}"):
        final = _wait(client, args.key, out, "leave")
        return _finish(client, final, args.folder, out, args.key)


def blob_put(args: argparse.Namespace, out: Output) -> int:
    """Store a file's content on the server and print its reference (sha256)."""
    client = _client(args, out)
    blob = client.put_blob(args.file)
    out.data({"reference": blob.reference, "size": blob.size}, blob.reference)
    return SUCCESS


def blob_get(args: argparse.Namespace, out: Output) -> int:
    """Download a blob into FILE, checking its sha256."""
    client = _client(args, out)
    with about(f"blob {args.reference}"):
        blob = client.get_blob(args.reference, args.file)
    path = str(Path(args.file).resolve())
    out.data({"reference": blob.reference, "size": blob.size, "file": path}, path)
    return SUCCESS


def image_put(args: argparse.Namespace, out: Output) -> int:
    """Admin: store a `docker save` tarball as image NAME, for nodes that cannot pull it.

    A foreman that finds no registry for a task's image downloads this tarball and loads it.
    Make one with: docker save NAME -o TARBALL
    """
    client = _client(args, out)
    blob = client.put_blob(args.tarball)
    with about(f"image {args.name}"):
        image = client.put_image(args.name, blob.reference)
    out.data(dict(image.raw), f"{image.name}: {image.reference} ({_size(image.size)})")
    return SUCCESS


def image_list(args: argparse.Namespace, out: Output) -> int:
    """List the images stored on the server as tarballs."""
    images = _client(args, out).images(getattr(args, "name", None))
    rows = [["NAME", "SIZE", "REFERENCE"]]
    rows += [[image.name, _size(image.size), image.reference] for image in images]
    out.data([dict(image.raw) for image in images], table(rows))
    return SUCCESS


def queue_stats(args: argparse.Namespace, out: Output) -> int:
    """Show task counts by state and the nodes (a client sees its own tasks only)."""
    client = _client(args, out)
    stats = client.queue_stats()
    rows = [["STATE", "TASKS"]] + [[state, str(n)] for state, n in sorted(stats.states.items())]
    text = table(rows) + f"\noldest queued: {when(stats.oldest_queued)}"
    if stats.nodes:
        nodes = [["NODE", "RUNNING", "LAST SEEN"]]
        for name, node in sorted(stats.nodes.items()):
            nodes.append([name, str(node.get("running", "-")), str(node.get("last_seen") or "-")])
        text += "\n\n" + table(nodes)
    out.data(dict(stats.raw), text)
    return SUCCESS


def _free_of(node: Node, name: str) -> str:
    free, total = node.free.get(name, 0), node.capacity.get(name, 0)
    return f"{free}/{total}"


def node_list(args: argparse.Namespace, out: Output) -> int:
    """List the registered nodes: state, free of capacity, tasks running, health, last seen.

    A node is up, draining, unhealthy (its health check found problems) or down (it has not
    called in for the server's KOLEJKA_NODE_DOWN_AFTER). A foreman sees its own nodes only.
    """
    nodes = _client(args, out).nodes()
    rows = [["NAME", "STATE", "TASKS", "CPUS", "MEMORY", "GPUS", "LAST SEEN", "PROBLEMS"]]
    for node in nodes:
        gpus = _free_of(node, "gpus")
        gpu_memory = node.capacity.get("gpu_memory")
        if node.capacity.get("gpus") and gpu_memory not in (None, "0B"):
            gpus += f" x{gpu_memory}"
        rows.append(
            [
                node.name,
                node.state,
                f"{node.busy}/{node.slots}",
                _free_of(node, "cpus"),
                _free_of(node, "memory"),
                gpus,
                when(node.last_seen),
                "; ".join(node.problems) or "-",
            ]
        )
    out.data([dict(node.raw) for node in nodes], table(rows) if nodes else "no nodes")
    return SUCCESS


def _drain(args: argparse.Namespace, out: Output, drain: bool) -> int:
    client = _client(args, out)
    with about(f"node {args.name}"):
        node = client.drain_node(args.name, drain)
    out.data(dict(node.raw), f"{node.name}: {node.state}")
    return SUCCESS


def node_drain(args: argparse.Namespace, out: Output) -> int:
    """Admin: give the node no new tasks; the tasks it runs go on."""
    return _drain(args, out, True)


def node_undrain(args: argparse.Namespace, out: Output) -> int:
    """Admin: let a drained node take tasks again."""
    return _drain(args, out, False)


def node_forget(args: argparse.Namespace, out: Output) -> int:
    """Admin: remove a node gone for good (refused while it holds leases: drain it and let its
    tasks end; a dead node's leases end when they expire). Its foreman, if it starts again,
    registers it anew."""
    client = _client(args, out)
    with about(f"node {args.name}"):
        client.forget_node(args.name)
    out.data({"name": args.name, "forgotten": True}, f"{args.name}: forgotten")
    return SUCCESS


def cron_add(args: argparse.Namespace, out: Output) -> int:
    """Queue a task folder at every tick of SCHEDULE, a cron expression (UTC); print its key.

    SCHEDULE has five fields, minute hour day-of-month month day-of-week, e.g. '*/15 * * * *'
    (every 15 minutes) or '0 3 * * 1-5' (03:00 on weekdays). Each run is an ordinary task.
    """
    client = _client(args, out)
    with about(args.task_dir):
        schedule = client.add_schedule(
            args.schedule, args.task_dir, priority=args.priority, missed=args.missed
        )
    out.data(dict(schedule.raw), f"{schedule.key}: next run {when(schedule.next_run)}")
    return SUCCESS


def cron_list(args: argparse.Namespace, out: Output) -> int:
    """List your schedules (inspectors and admins: everyone's)."""
    schedules = _client(args, out).schedules()
    rows = [["KEY", "SCHEDULE", "STATE", "NEXT RUN", "RUNS", "LAST TASK"]]
    for item in schedules:
        state = "paused" if item.paused else "active"
        if item.last_error:
            state += f" (last tick: {item.last_error})"
        next_run = "-" if item.paused else when(item.next_run)
        rows.append([item.key, item.cron, state, next_run, str(item.runs), item.last_task or "-"])
    out.data([dict(item.raw) for item in schedules], table(rows))
    return SUCCESS


def cron_pause(args: argparse.Namespace, out: Output) -> int:
    """Stop queueing a schedule's runs until it is resumed."""
    client = _client(args, out)
    with about(f"schedule {args.key}"):
        schedule = client.pause_schedule(args.key)
    out.data(dict(schedule.raw), f"{schedule.key}: paused")
    return SUCCESS


def cron_resume(args: argparse.Namespace, out: Output) -> int:
    """Queue a paused schedule's runs again, from its next tick on."""
    client = _client(args, out)
    with about(f"schedule {args.key}"):
        schedule = client.resume_schedule(args.key)
    out.data(dict(schedule.raw), f"{schedule.key}: next run {when(schedule.next_run)}")
    return SUCCESS


def cron_remove(args: argparse.Namespace, out: Output) -> int:
    """Remove a schedule; the runs it already queued stay."""
    client = _client(args, out)
    with about(f"schedule {args.key}"):
        client.remove_schedule(args.key)
    out.data({"key": args.key, "removed": True}, f"{args.key}: removed")
    return SUCCESS


def _prompt(question: str, secret: bool) -> str:
    """Read an answer from the terminal, or a line of stdin when there is none (scripts)."""
    if sys.stdin.isatty():
        return getpass.getpass(question) if secret else input(question)
    return sys.stdin.readline().rstrip("\n")


def login(args: argparse.Namespace, out: Output) -> int:
    """Log in and store a token (never the password) for later commands.

    The name and password come from --username/--password or KOLEJKA_USERNAME/PASSWORD, else
    they are asked for (read from stdin lines without a terminal). The token is stored, mode
    0600, in ~/.config/kolejka/credentials, and the server becomes the default one.
    """
    settings = _settings(args)
    server = settings.require_server()
    username = settings.value("username") or _prompt("username: ", secret=False)
    password = settings.value("password") or _prompt(f"password for {username}: ", secret=True)
    client = KolejkaClient(server, retries=getattr(args, "retries", 5))
    account = client.login(username, password)
    assert account.token is not None
    path = store_login(settings.user_dir, server, account.username, account.token)
    document = {
        "server": server,
        "username": account.username,
        "role": account.role,
        "credentials": str(path),
    }
    out.data(document, f"logged in to {server} as {account.username} ({account.role})")
    out.message(f"token stored in {path}")
    return SUCCESS


def logout(args: argparse.Namespace, out: Output) -> int:
    """Revoke the stored token on the server and forget it."""
    settings = _settings(args)
    server = settings.require_server()
    credential = settings.credential()
    revoked, failure = False, None
    if credential is not None and credential[0] == "token":
        client = KolejkaClient(server, token=credential[1], retries=getattr(args, "retries", 5))
        try:
            client.logout()
            revoked = True
        except AuthenticationFailed:
            revoked = True  # the token was already invalid
        except ClientError as error:
            failure = error
    forgot = forget_login(settings.user_dir, server)
    out.data(
        {"server": server, "revoked": revoked, "forgotten": forgot},
        f"logged out of {server}" if forgot or revoked else f"no login stored for {server}",
    )
    if failure is not None:
        out.error(f"the token was forgotten here but not revoked on the server: {failure}")
        return failure.exit_code
    return SUCCESS
