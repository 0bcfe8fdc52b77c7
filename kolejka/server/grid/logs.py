"""Task logs: what a task prints, readable while it runs.

The node holding a task's lease streams the task's stdout and stderr (the files its result will
hold, as the worker caps them) in chunks as they grow (`append`); anyone who may read the task
reads them back by byte offset (`read`; ``task log -f`` and the board long-poll through
`polls.log`). The log shown is that of the task's last attempt: while it runs and after a
cancel, a failure or a lost node, the chunks its node sent; once the task is done, its result's
file, which holds the same bytes and all of them (the chunks are then dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kolejka.common import Status

from . import blobstore, leases, transitions, wakeup
from .errors import Conflict
from .models import FINISHED, Blob, Lease, LogChunk, LogStream, Outcome, State, Task

MAX_CHUNK = 64 * 1024  # the data of one append, at most
MAX_READ = 1024 * 1024  # the data of one read, at most
_ROWS = 4096  # chunks looked at by one read (appends on every line make them small)


@dataclass(frozen=True)
class LogPart:
    """`data`, the bytes of a task's `stream` from `offset` on, as known now.

    `size` is how many bytes of the stream are known; `attempt` the attempt they are of (`None`
    before the first) and `started` when it began, which tells a new run of the task from the
    last even where its number is the same (an attempt handed back is not counted);
    `complete` that the task is final, so no more will come (a cancelled task's node may still
    send the last lines it had, a moment later); `truncated` that the stream reached an output
    cap, past which nothing was kept (for a done task: its verdict is ``OUTPUT_LIMIT``).
    """

    stream: str
    offset: int
    data: bytes
    size: int
    attempt: int | None
    started: datetime | None
    complete: bool
    truncated: bool

    @property
    def next(self) -> int:
        """Where the next read starts."""
        return self.offset + len(self.data)


def _source(task: Task, stream: str) -> str:
    """The stream whose bytes `stream` shows: a task that merges its output writes one file."""
    spec = task.spec or {}
    merged = spec.get("stdout") is not None and spec.get("stdout") == spec.get("stderr")
    if stream == LogStream.STDERR and merged:
        return LogStream.STDOUT
    return stream


def _writer(lease: Lease) -> int:
    """The id of the task `lease` may append to: while the lease holds it, and after its
    owner cancelled it (the node sends what the task printed until it was killed). Raises
    `LeaseLost` (or `Conflict`, once its result was accepted) for any other lease."""
    task_id = lease.task_id
    if (
        task_id is not None
        and lease.outcome == Outcome.CANCELLED
        and Task.objects.filter(id=task_id, lease_id=lease.id).exists()
    ):
        return task_id
    return leases.current_task(lease, timezone.now())


def append(lease: Lease, stream: str, offset: int, data: bytes, truncated: bool = False) -> int:
    """Store `data` at byte `offset` of `stream` of the attempt `lease` runs; return the
    stream's end, where its next chunk starts.

    Idempotent: bytes before the end are already stored and skipped, so a chunk sent again (its
    answer was lost) is not stored twice. `truncated` says the node's cap ends the stream here;
    past ``KOLEJKA_LOG_MAX_SIZE`` the server cuts it so itself. Raises `Conflict` (``field``
    offset) for an offset past the end, a gap the node must fill from the end; `LeaseLost` for
    a lease that no longer runs the task (`_writer`).
    """
    with transaction.atomic():
        # One append of a lease at a time: the end read below is the end written after it.
        # The loser of two at once waits here, then finds its bytes stored and skips them.
        current = transitions.locked(Lease.objects.filter(id=lease.id)).get()
        task_id = _writer(current)
        chunks = LogChunk.objects.filter(task_id=task_id, lease=current.id, stream=stream)
        last = chunks.order_by("-offset").values_list("offset", "data", "truncated").first()
        end = 0 if last is None else last[0] + len(last[1])
        if last is not None and last[2]:
            return end
        if offset > end:
            raise Conflict(
                f"offset {offset} is past the end of the stored {stream} ({end} bytes); "
                f"send from {end}",
                field="offset",
            )
        data = data[end - offset :]
        room = settings.LOG_MAX_SIZE - end
        if len(data) >= room:
            data, truncated = data[:room], True
        if not data and not truncated:
            return end
        if last is None:
            # The attempt's first output: earlier attempts' partial logs are no longer shown.
            LogChunk.objects.filter(task_id=task_id).exclude(lease=current.id).delete()
        LogChunk.objects.create(
            task_id=task_id,
            lease=current.id,
            stream=stream,
            offset=end,
            data=data,
            truncated=truncated,
        )
        wakeup.notify(wakeup.log_topic(task_id))
    return end + len(data)


def read(task: Task, stream: str, offset: int = 0, limit: int = MAX_READ) -> LogPart:
    """At most `limit` bytes of `task`'s `stream` from `offset` (see `LogPart`): its result's
    file once it is done, else the chunks its last attempt's node sent. An offset past what is
    known answers no data."""
    stream = _source(task, stream)
    limit = max(0, min(limit, MAX_READ))
    run = (
        Lease.objects.filter(id=task.lease_id).values_list("attempt", "created").first()
        if task.lease_id is not None
        else None
    )
    attempt, started = run if run is not None else (None, None)
    complete = task.state in FINISHED
    found = _result_file(task, stream)
    if found is not None:
        reference, size = found
        data = b""
        if offset < size and (file := blobstore.backend().open(reference, offset)) is not None:
            with file:
                data = file.read(limit)
        cut = (task.result or {}).get("status") == str(Status.OUTPUT_LIMIT)
        return LogPart(stream, offset, data, size, attempt, started, complete, cut)
    if task.lease_id is None:
        return LogPart(stream, offset, b"", 0, attempt, started, complete, False)
    chunks = LogChunk.objects.filter(task_id=task.pk, lease=task.lease_id, stream=stream)
    last = chunks.order_by("-offset").values_list("offset", "data", "truncated").first()
    if last is None:
        return LogPart(stream, offset, b"", 0, attempt, started, complete, False)
    size, cut = last[0] + len(last[1]), last[2]
    pieces, taken = [], 0
    if offset < size:
        start = (
            chunks.filter(offset__lte=offset)
            .order_by("-offset")
            .values_list("offset", flat=True)
            .first()
        ) or 0
        rows = chunks.filter(offset__gte=start).order_by("offset")
        for at, stored in rows.values_list("offset", "data")[:_ROWS]:
            piece = bytes(stored)[max(offset + taken - at, 0) :][: limit - taken]
            pieces.append(piece)
            taken += len(piece)
            if taken >= limit:
                break
    return LogPart(stream, offset, b"".join(pieces), size, attempt, started, complete, cut)


def _result_file(task: Task, stream: str) -> tuple[str, int] | None:
    """The reference and size of the done `task`'s result file holding `stream`, if it has
    one."""
    if task.state != State.DONE:
        return None
    name = (task.spec or {}).get(stream)
    files = (task.result or {}).get("files") or {}
    reference = (files.get(name) or {}).get("reference") if name else None
    if not isinstance(reference, str):
        return None
    size = Blob.objects.filter(reference=reference).values_list("size", flat=True).first()
    return None if size is None else (reference, size)
