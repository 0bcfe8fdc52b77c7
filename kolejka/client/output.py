"""What ``kolejka-client`` shows: data on stdout (JSON with ``--json``), messages, the live status
line and progress bars on stderr, nothing but errors with ``--quiet``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from kolejka.common.states import TaskState

from .blobs import ProgressBar, ProgressFactory
from .models import TaskInfo


class Output:
    """The streams and modes of one run of the command line."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        verbose: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def data(self, document: Any, text: str | None = None) -> None:
        """Print a command's answer: `document` as JSON with ``--json``, else `text`."""
        if self.json_mode:
            json.dump(document, self.stdout, indent=2, sort_keys=True, ensure_ascii=False)
            self.stdout.write("\n")
        elif text is not None and not self.quiet:
            self.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        self.stdout.flush()

    def message(self, text: str) -> None:
        """A message for the person (not for scripts): stderr, silenced by ``--quiet``."""
        if not self.quiet:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def error(self, text: str) -> None:
        """An error: always shown, one line on stderr prefixed with the program's name."""
        self.stderr.write(f"kolejka-client: error: {text}\n")
        self.stderr.flush()

    def progress(self) -> ProgressFactory | None:
        """Progress bars for large transfers, on a terminal only."""
        if not (not self.quiet and self.stderr.isatty()):
            return None
        stream = self.stderr
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        # A terminal that reports no size (a bare pty) would get no bar at all from tqdm.
        size: dict[str, Any] = (
            {"dynamic_ncols": True} if columns > 0 else {"ncols": 80, "nrows": 24}
        )

        def make(description: str, total: int) -> ProgressBar:
            from tqdm import tqdm  # here: most commands never draw a bar, and it costs 5 ms

            return tqdm(
                total=total,
                desc=description,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=stream,
                leave=False,
                **size,
            )

        return make

    def status_line(self) -> StatusLine:
        return StatusLine(self.stderr, enabled=not self.quiet and not self.json_mode)


def describe_state(info: TaskInfo) -> str:
    """``queued``, ``running on node01``, ``failed: why``: a task's state for a person."""
    if info.state in (TaskState.ASSIGNED, TaskState.RUNNING) and info.node:
        preposition = "to" if info.state == TaskState.ASSIGNED else "on"
        return f"{info.state} {preposition} {info.node}"
    if info.state in (TaskState.FAILED, TaskState.CANCELLED) and info.error:
        return f"{info.state}: {info.error}"  # cancelled: a dependency that failed it
    return str(info.state)


class StatusLine:
    """The live line ``t-1: queued → running on node01 → done`` on stderr.

    On a terminal it is redrawn in place; elsewhere (a log) each change is a line of its own.
    """

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.live = enabled and stream.isatty()
        self.steps: list[str] = []
        self.open = False

    def update(self, info: TaskInfo) -> None:
        step = describe_state(info)
        if not self.enabled or (self.steps and self.steps[-1] == step):
            return
        self.steps.append(step)
        if self.live:
            self.stream.write(f"\r\x1b[K{info.key}: {' → '.join(self.steps)}")
            self.open = True
            if info.state.final:
                self.end()
        else:
            self.stream.write(f"{info.key}: {step}\n")
        self.stream.flush()

    def end(self) -> None:
        """Close the line (before other output, or when the wait ends)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def when(moment: datetime | None) -> str:
    """A time for a table: local, to the second; ``-`` for none."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns, the first row being the header."""
    if not rows:
        return ""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
