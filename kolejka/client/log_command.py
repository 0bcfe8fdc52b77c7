"""``kolejka-client task log``: what a task printed, also while it runs (``-f``)."""

from __future__ import annotations

import argparse
import json
from typing import BinaryIO

from .commands import _client, about
from .exits import INTERRUPTED, SUCCESS
from .logs import LogPart
from .output import Output


def task_log(args: argparse.Namespace, out: Output) -> int:
    """Print what a task printed on its stdout (--stderr: its stderr), byte for byte.

    With -f, follow it while the task runs, until the task ends; Ctrl-C stops following (the
    task keeps running). After the end too: a done task's log is its result's file; a
    cancelled or failed one's, what its node sent before. With --json, one JSON document a line
    for each piece read: stream, attempt, started, offset, next, size, data (base64), complete,
    truncated.
    """
    client = _client(args, out)
    stream = "stderr" if args.stderr else "stdout"
    sink: BinaryIO | None = getattr(out.stdout, "buffer", None)
    last: LogPart | None = None
    try:
        with about(f"task {args.key}"):
            for part in client.log(args.key, stream=stream, follow=args.follow):
                if last is not None and last.started is not None and part.started != last.started:
                    out.message(
                        f"{args.key}: attempt {part.attempt} started again; its {stream} follows"
                    )
                _write(out, sink, part)
                last = part
    except KeyboardInterrupt:
        return INTERRUPTED
    if last is not None and last.truncated:
        out.message(f"{args.key}: its {stream} reached the output cap; what followed was not kept")
    return SUCCESS


def _write(out: Output, sink: BinaryIO | None, part: LogPart) -> None:
    if out.json_mode:
        out.stdout.write(json.dumps(dict(part.raw), sort_keys=True) + "\n")
        out.stdout.flush()
    elif out.quiet or not part.data:
        return
    elif sink is not None:
        out.stdout.flush()
        sink.write(part.data)
        sink.flush()
    else:  # a text stream without bytes beneath (a test's)
        out.stdout.write(part.data.decode(errors="replace"))
        out.stdout.flush()
