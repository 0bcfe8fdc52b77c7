"""``kolejka-client``: the command line. Each subcommand is one function in `commands`, whose
docstring is its help."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Sequence

from kolejka import __version__
from kolejka.common import SpecError, Status
from kolejka.common.states import TaskState

from . import batch_commands, commands, log_command
from .errors import AuthenticationFailed, ClientError
from .exits import EXIT_CODES, INTERRUPTED, USAGE
from .output import Output

DESCRIPTION = """\
Submit tasks to a kolejka server and fetch their results.

The server and credentials come from flags, else the environment (KOLEJKA_SERVER,
KOLEJKA_USERNAME, KOLEJKA_PASSWORD, KOLEJKA_TOKEN), else ~/.config/kolejka/kolejka.conf, else
/etc/kolejka/kolejka.conf; 'login' stores a token for later commands.
"""


def _common() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name."""
    parser = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = parser.add_argument_group("common options")
    group.add_argument("--server", metavar="URL", help="the server's URL (env KOLEJKA_SERVER)")
    group.add_argument("--username", metavar="NAME", help="user name (env KOLEJKA_USERNAME)")
    group.add_argument("--password", metavar="PASSWORD", help="password (env KOLEJKA_PASSWORD)")
    group.add_argument("--token", metavar="TOKEN", help="API token (env KOLEJKA_TOKEN)")
    group.add_argument("--json", action="store_true", help="print the answer as JSON for scripts")
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("-v", "--verbose", action="store_true", help="show the causes of errors")
    group.add_argument(
        "--retries", type=int, metavar="N", help="repeat a failed request up to N times (5)"
    )
    return parser


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    function: Callable[..., int],
    common: argparse.ArgumentParser,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    doc = inspect.cleandoc(function.__doc__ or "")
    summary = doc.split("\n", 1)[0]
    parser = group.add_parser(
        name,
        help=summary,
        description=doc,
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=function)
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="kolejka-client",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kolejka-client {__version__}")
    top = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    execute = _command(top, "execute", commands.execute, common, EXIT_CODES)
    execute.add_argument("task_dir", metavar="TASK_DIR")
    execute.add_argument("result_dir", metavar="RESULT_DIR")
    execute.add_argument("--priority", type=int, default=0, help="higher runs first (admins: >0)")
    commands.ordering_arguments(execute)
    execute.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="on Ctrl-C cancel the task without asking",
    )

    task = top.add_parser("task", help="submit, fetch, list, inspect and cancel tasks")
    task_commands = task.add_subparsers(title="commands", metavar="COMMAND", required=True)
    put = _command(task_commands, "put", commands.task_put, common)
    put.add_argument("task_dir", metavar="TASK_DIR")
    put.add_argument("--priority", type=int, default=0, help="higher runs first (admins: >0)")
    commands.ordering_arguments(put)
    get = _command(task_commands, "get", commands.task_get, common)
    get.add_argument("key", metavar="KEY")
    get.add_argument("folder", metavar="DIR")
    listing = _command(task_commands, "list", commands.task_list, common)
    listing.add_argument(
        "--state",
        action="append",
        choices=[str(state) for state in TaskState],
        help="only tasks in this state (repeat for several)",
    )
    listing.add_argument("--batch", metavar="ID", help="only tasks of this batch")
    listing.add_argument("--owner", metavar="NAME", help="only this user's tasks (inspectors)")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    status = _command(task_commands, "status", commands.task_status, common)
    status.add_argument("key", metavar="KEY")
    cancel = _command(task_commands, "cancel", commands.task_cancel, common)
    cancel.add_argument("key", metavar="KEY")
    rejudge = _command(task_commands, "rejudge", commands.task_rejudge, common)
    rejudge.add_argument("key", metavar="KEY", nargs="?", help="one task (or use the filters)")
    rejudge.add_argument(
        "--state", choices=[str(state) for state in TaskState if state.final], help="in this state"
    )
    rejudge.add_argument(
        "--verdict",
        action="append",
        metavar="V",
        choices=[str(status) for status in Status],
        help="done with verdict V: OK, RUNTIME_ERROR, ... (repeat for several)",
    )
    rejudge.add_argument("--batch", metavar="BATCH", help="of this batch")
    rejudge.add_argument("--tag", metavar="TAG", help="requiring this node tag")
    rejudge.add_argument("--owner", metavar="NAME", help="this user's tasks (admins)")
    prio = _command(task_commands, "prio", commands.task_prio, common)
    prio.add_argument("key", metavar="KEY")
    prio.add_argument("rank", metavar="RANK", type=int)
    why = _command(task_commands, "why", commands.task_why, common)
    why.add_argument("key", metavar="KEY")
    deliveries = _command(task_commands, "deliveries", commands.task_deliveries, common)
    deliveries.add_argument("key", metavar="KEY")
    log = _command(task_commands, "log", log_command.task_log, common)
    log.add_argument("key", metavar="KEY")
    log.add_argument(
        "-f", "--follow", action="store_true", help="follow it while the task runs, until it ends"
    )
    log.add_argument("--stderr", action="store_true", help="the task's stderr, not its stdout")

    result = top.add_parser("result", help="fetch results")
    result_commands = result.add_subparsers(title="commands", metavar="COMMAND", required=True)
    result_get = _command(result_commands, "get", commands.result_get, common)
    result_get.add_argument("key", metavar="KEY")
    result_get.add_argument("folder", metavar="DIR")
    wait = _command(result_commands, "wait", commands.result_wait, common, EXIT_CODES)
    wait.add_argument("key", metavar="KEY")
    wait.add_argument("folder", metavar="DIR", nargs="?", help="download the result here")

    blob = top.add_parser("blob", help="store and fetch file contents")
    blob_commands = blob.add_subparsers(title="commands", metavar="COMMAND", required=True)
    blob_put = _command(blob_commands, "put", commands.blob_put, common)
    blob_put.add_argument("file", metavar="FILE")
    blob_get = _command(blob_commands, "get", commands.blob_get, common)
    blob_get.add_argument("reference", metavar="REF")
    blob_get.add_argument("file", metavar="FILE")

    image = top.add_parser("image", help="store docker images on the server for nodes")
    image_commands = image.add_subparsers(title="commands", metavar="COMMAND", required=True)
    image_put = _command(image_commands, "put", commands.image_put, common)
    image_put.add_argument("name", metavar="NAME", help="the image's name, e.g. busybox:latest")
    image_put.add_argument("tarball", metavar="TARBALL", help="its `docker save` tarball")
    image_list = _command(image_commands, "list", commands.image_list, common)
    image_list.add_argument("--name", metavar="NAME", help="only this image")

    batch_commands.add_parsers(top, _command, common)

    node = top.add_parser("node", help="list the nodes; drain, undrain and forget them (admins)")
    node_commands = node.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _command(node_commands, "list", commands.node_list, common)
    for name, function in (
        ("drain", commands.node_drain),
        ("undrain", commands.node_undrain),
        ("forget", commands.node_forget),
    ):
        _command(node_commands, name, function, common).add_argument("name", metavar="NODE")

    queue = top.add_parser("queue", help="the queue")
    queue_commands = queue.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _command(queue_commands, "stats", commands.queue_stats, common)

    cron = top.add_parser("cron", help="periodic tasks: queue a task folder on a schedule")
    cron_commands = cron.add_subparsers(title="commands", metavar="COMMAND", required=True)
    cron_add = _command(cron_commands, "add", commands.cron_add, common)
    cron_add.add_argument("schedule", metavar="SCHEDULE", help="e.g. '*/15 * * * *' (UTC)")
    cron_add.add_argument("task_dir", metavar="TASK_DIR")
    cron_add.add_argument("--priority", type=int, default=0, help="higher runs first (admins: >0)")
    cron_add.add_argument(
        "--missed",
        choices=["once", "skip"],
        default="once",
        help="ticks no server ran in time (it was down): one run for them all, or none (once)",
    )
    _command(cron_commands, "list", commands.cron_list, common)
    for name, function in (
        ("pause", commands.cron_pause),
        ("resume", commands.cron_resume),
        ("remove", commands.cron_remove),
    ):
        _command(cron_commands, name, function, common).add_argument("key", metavar="KEY")

    _command(top, "login", commands.login, common)
    _command(top, "logout", commands.logout, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(
        json_mode=getattr(args, "json", False),
        quiet=getattr(args, "quiet", False),
        verbose=getattr(args, "verbose", False),
    )
    try:
        code: int = args.handler(args, out)
        return code
    except SpecError as error:
        _report(out, error, USAGE)
        return USAGE
    except ClientError as error:
        _report(out, error, error.exit_code)
        return error.exit_code
    except KeyboardInterrupt:
        out.error("interrupted")
        return INTERRUPTED


def _report(out: Output, error: SpecError | ClientError, code: int) -> None:
    text = str(error)
    subject = getattr(error, "subject", None)
    if subject:
        text = f"{subject}: {text}"
    if isinstance(error, AuthenticationFailed):
        text += "; log in with 'kolejka-client login' or give --token / KOLEJKA_TOKEN"
    out.error(text)
    if out.verbose:
        cause = error.__cause__ or error.__context__
        while cause is not None:
            out.stderr.write(f"  caused by {type(cause).__name__}: {cause}\n")
            cause = cause.__cause__ or cause.__context__
    if out.json_mode:
        document: dict[str, object] = {"error": text, "exit_code": code}
        for name in ("status", "code", "field"):
            if getattr(error, name, None) is not None:
                document[name] = getattr(error, name)
        if isinstance(error, SpecError):
            document["field"] = error.field
        out.data(document)
