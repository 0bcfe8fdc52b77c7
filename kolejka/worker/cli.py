"""``kolejka-worker``: run one task folder to one result folder, on this node, now.

Exit status of ``kolejka-worker execute``:

- 0: a result with the task's verdict was written (OK, RUNTIME_ERROR, TIME_LIMIT, ...);
- 1: the platform failed: a ``SYSTEM_ERROR`` result saying what failed was written (or, if even
  that was impossible, nothing, and stderr says why);
- 2: the task (or the command line) is invalid: nothing was run and no result written;
- 130 / 143: interrupted by SIGINT / SIGTERM: the container was killed first, nothing is left
  behind, and a ``SYSTEM_ERROR`` result says ``cancelled``.

Every option can also be given as an environment variable (in brackets in ``--help``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kolejka.common import KolejkaError, Limits, SpecError, Status
from kolejka.common.units import parse_int, parse_memory

from .config import DEFAULT_LIMITS, DEFAULT_MAXIMA, PullPolicy, WorkerConfig


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _limits(text: str, base: Limits, field: str) -> Limits:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(field, text, f"is not JSON: {error}") from None
    return Limits.from_dict(data, field).with_defaults(base)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kolejka-worker", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "execute",
        help="run TASK_DIR, write RESULT_DIR",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("task_dir", metavar="TASK_DIR", type=Path)
    run.add_argument("result_dir", metavar="RESULT_DIR", type=Path)
    option = run.add_argument

    option(
        "--observer",
        metavar="SOCKET",
        default=_env("KOLEJKA_OBSERVER"),
        help="the observer's socket; without it the worker accounts in-process [KOLEJKA_OBSERVER]",
    )
    option(
        "--defaults",
        metavar="JSON",
        default=_env("KOLEJKA_WORKER_DEFAULTS", "{}"),
        help="limits for tasks that set none, over the built-in ones, e.g. "
        '\'{"memory": "2G"}\' [KOLEJKA_WORKER_DEFAULTS]',
    )
    option(
        "--maxima",
        metavar="JSON",
        default=_env("KOLEJKA_WORKER_MAXIMA", "{}"),
        help='caps on every limit, e.g. \'{"time": "1H", "root": true}\' (root in the container '
        "is refused unless allowed here) [KOLEJKA_WORKER_MAXIMA]",
    )
    option(
        "--root-images",
        metavar="PATTERNS",
        default=_env("KOLEJKA_WORKER_ROOT_IMAGES", ""),
        help="images whose tasks run as root unless they ask root: false, comma-separated "
        "patterns such as 'kolejka/judge:*' (the original ran every task as root; "
        "kolejka-judge needs it) [KOLEJKA_WORKER_ROOT_IMAGES]",
    )
    option(
        "--max-output",
        metavar="SIZE",
        default=_env("KOLEJKA_WORKER_MAX_OUTPUT", "16M"),
        help="bytes kept of stdout and of stderr [KOLEJKA_WORKER_MAX_OUTPUT]",
    )
    option(
        "--max-collect-files",
        metavar="N",
        default=_env("KOLEJKA_WORKER_MAX_COLLECT_FILES", "1000"),
        help="result files collected at most [KOLEJKA_WORKER_MAX_COLLECT_FILES]",
    )
    option(
        "--max-collect-size",
        metavar="SIZE",
        default=_env("KOLEJKA_WORKER_MAX_COLLECT_SIZE", "256M"),
        help="bytes of result files collected at most [KOLEJKA_WORKER_MAX_COLLECT_SIZE]",
    )
    option(
        "--pull",
        choices=[str(policy) for policy in PullPolicy],
        default=_env("KOLEJKA_WORKER_PULL", "missing"),
        help="when to pull the task's image [KOLEJKA_WORKER_PULL]",
    )
    option(
        "--tags",
        default=_env("KOLEJKA_WORKER_TAGS", ""),
        help="the node's tags, comma-separated, copied into results [KOLEJKA_WORKER_TAGS]",
    )
    option(
        "--temp-dir",
        type=Path,
        default=Path(_env("KOLEJKA_WORKER_TEMP_DIR", str(WorkerConfig.temp_dir)) or "/tmp"),
        help="where workspaces are mounted [KOLEJKA_WORKER_TEMP_DIR]",
    )
    option(
        "--cgroup-base",
        default=_env("KOLEJKA_WORKER_CGROUP_BASE", WorkerConfig.cgroup_base),
        help="cgroup under which tasks' groups are made [KOLEJKA_WORKER_CGROUP_BASE]",
    )
    option(
        "--json",
        action="store_true",
        help="print the result (kolejka_result.json) to stdout",
    )
    option("-v", "--verbose", action="store_true", help="log what happens, with tracebacks")
    return parser


def _config(args: argparse.Namespace) -> WorkerConfig:
    return WorkerConfig(
        defaults=_limits(args.defaults, DEFAULT_LIMITS, "--defaults"),
        maxima=_limits(args.maxima, DEFAULT_MAXIMA, "--maxima"),
        max_output=parse_memory(args.max_output, "--max-output", minimum=0),
        max_collect_files=parse_int(args.max_collect_files, "--max-collect-files"),
        max_collect_bytes=parse_memory(args.max_collect_size, "--max-collect-size"),
        observer=args.observer or None,
        pull=PullPolicy(args.pull),
        tags=tuple(tag for tag in args.tags.split(",") if tag),
        temp_dir=args.temp_dir,
        cgroup_base=args.cgroup_base,
        root_images=tuple(pattern for pattern in args.root_images.split(",") if pattern),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="kolejka-worker: %(message)s",
    )
    cancel = threading.Event()
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        cancel.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)

    try:
        config = _config(args)
    except SpecError as error:
        print(f"kolejka-worker: invalid option {error}", file=sys.stderr)
        return 2

    from .run import execute

    try:
        result = execute(args.task_dir, args.result_dir, config=config, cancel=cancel)
    except SpecError as error:
        print(f"kolejka-worker: invalid task: {error}", file=sys.stderr)
        return 2
    except (KolejkaError, OSError) as error:
        if args.verbose:
            logging.exception("failed")
        print(f"kolejka-worker: {error}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    if received:
        return 128 + received[0]
    if result.status is Status.SYSTEM_ERROR:
        print(f"kolejka-worker: system error: {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
