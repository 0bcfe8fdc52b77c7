"""`KolejkaClient`: the server's HTTP API as typed Python calls, for scripts and notebooks.

>>> client = KolejkaClient.from_config()              # server and token as the CLI finds them
>>> result = client.execute("task/", "result/")        # submit, wait, download
>>> result.status
<Status.OK: 'OK'>
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import requests

from kolejka.common import Result, Task, load_task
from kolejka.common.after import After, parse_after
from kolejka.common.states import TaskState

from . import arrays, blobs, folders, logs
from .blobs import Blob, ProgressFactory
from .config import Settings, load_settings
from .errors import ClientError, ConfigError
from .exits import CANCELLED, PLATFORM
from .logs import LogPart
from .models import (
    Account,
    Batch,
    BatchProgress,
    Delivery,
    QueueStats,
    Schedule,
    TaskInfo,
    Why,
)
from .node_api import NodeApi
from .transport import MAX_PAUSE, Transport

PathLike = str | os.PathLike[str]
# A server that answers a long-poll at once with no news is asked again after this long.
POLL_FLOOR = 1.0


class TaskFailed(ClientError):
    """The platform gave up on the task (state `failed`); `info.error` says why."""

    exit_code: ClassVar[int] = PLATFORM

    def __init__(self, info: TaskInfo) -> None:
        self.info = info
        super().__init__(f"task {info.key} failed: {info.error or 'no reason given'}")


class TaskCancelled(ClientError):
    """The task was cancelled before it finished."""

    exit_code: ClassVar[int] = CANCELLED

    def __init__(self, info: TaskInfo) -> None:
        self.info = info
        super().__init__(f"task {info.key} was cancelled")


class WaitTimeout(ClientError, TimeoutError):
    """The task did not finish within the time given to `wait`."""

    exit_code: ClassVar[int] = PLATFORM


def ordering(rank: int, after: Sequence[str | After]) -> dict[str, Any]:
    """The `rank` and `after` fields of a submission, checked by the common rules first."""
    given = [item if isinstance(item, str) else item.to_dict() for item in after]
    return {"rank": rank, "after": [item.to_dict() for item in parse_after(given)]}


class KolejkaClient(NodeApi):
    """A connection to one kolejka server, as one user.

    Give a `token`, or a `username` and `password` (a token is then fetched on first use and
    renewed if the server refuses it). `retries` and `backoff` shape how failed requests are
    repeated (see `Transport`); `progress` makes progress bars for large transfers.
    Every method raises a `ClientError` subclass on failure, never a `requests` exception.
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        progress: ProgressFactory | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.transport = Transport(server, retries=retries, backoff=backoff, session=session)
        self.transport.token = token
        self.username = username
        self.progress = progress
        if password is not None:
            if username is None:
                raise ConfigError(
                    "a password needs a username: give --username or KOLEJKA_USERNAME"
                )
            self.transport.authenticate = lambda: self._new_token(username, password)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> KolejkaClient:
        """A client for the server and credential that `settings` resolved (see `config`)."""
        credential = settings.credential()
        kind, secret = credential if credential else ("", None)
        return cls(
            settings.require_server(),
            token=secret if kind == "token" else None,
            username=settings.value("username"),
            password=secret if kind == "password" else None,
            **options,
        )

    @classmethod
    def from_config(
        cls,
        *,
        server: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        **options: Any,
    ) -> KolejkaClient:
        """A client configured as ``kolejka-client`` is: arguments over environment over files."""
        settings = load_settings(server=server, username=username, password=password, token=token)
        return cls.from_settings(settings, **options)

    @property
    def server(self) -> str:
        return self.transport.server

    @property
    def token(self) -> str | None:
        """The token in use (after a `login`, or fetched with the password)."""
        return self.transport.token

    def close(self) -> None:
        self.transport.session.close()

    def __enter__(self) -> KolejkaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Account

    def _new_token(self, username: str, password: str) -> str:
        account = self.login(username, password)
        assert account.token is not None
        return account.token

    def login(self, username: str, password: str) -> Account:
        """Get a token for `username` and use it from now on; the answer holds it in `token`.

        Raises `AuthenticationFailed` for a wrong name or password.
        """
        answer = self.transport.json(
            "POST", "auth/token/", json={"username": username, "password": password}, auth=False
        )
        account = Account.from_dict(answer)
        if not account.token:
            raise ConfigError(f"the server at {self.server} answered a login without a token")
        self.transport.token = account.token
        self.username = account.username
        return account

    def logout(self) -> None:
        """Revoke the token in use on the server."""
        self.transport.request("DELETE", "auth/token/")
        self.transport.token = None

    def whoami(self) -> Account:
        """The user the client acts as, and their role."""
        return Account.from_dict(self.transport.json("GET", "auth/me/"))

    # Blobs

    def blob_exists(self, reference: str) -> bool:
        """Whether the caller may read the blob `reference`."""
        return blobs.exists(self.transport, reference)

    def put_blob(self, path: PathLike) -> Blob:
        """Store a file as a blob (skipped when the caller already has its content)."""
        return blobs.upload_file(self.transport, Path(path), self.progress)

    def put_bytes(self, data: bytes) -> Blob:
        """Store `data` as a blob (skipped when the caller already has it)."""
        return blobs.upload_bytes(self.transport, data)

    def get_blob(self, reference: str, path: PathLike) -> Blob:
        """Download the blob `reference` to `path`, checking its hash."""
        target = Path(path)
        return blobs.download(self.transport, reference, target, self.progress)

    # Tasks

    def upload_task(self, task: Task | PathLike, folder: PathLike | None = None) -> Task:
        """The task (a `Task` whose path files are in `folder`, or a task folder) with its files
        uploaded, as references. Raises `SpecError` for an invalid task, naming the field."""
        if not isinstance(task, Task):
            folder = task
            task = load_task(task, local=False)
        return folders.upload_task(self.transport, task, folder, self.progress)

    def submit(
        self,
        task: Task | PathLike,
        *,
        folder: PathLike | None = None,
        priority: int = 0,
        rank: int = 0,
        after: Sequence[str | After] = (),
    ) -> TaskInfo:
        """Upload the task's files and queue it; return the new task (its `key` names it).
        `rank` orders it among your own tasks (higher first); `after` are the tasks or batches
        it waits for (`kolejka.common.after`: ``"t-..."``, ``"notok:t-..."``, ``After``)."""
        spec = self.upload_task(task, folder)
        # One key for every try: a submission sent again after a lost answer finds its task.
        answer = self.transport.json(
            "POST",
            "tasks/",
            json={"task": spec.to_dict(), "priority": priority, **ordering(rank, after)},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            safe=True,
        )
        return TaskInfo.from_dict(answer)

    def submit_batch(
        self,
        tasks: Iterable[Task | PathLike],
        *,
        priority: int = 0,
        rank: int = 0,
        after: Sequence[str | After] = (),
    ) -> Batch:
        """Upload and queue many tasks (task folders or `Task` objects with reference files) at
        once, all or none, each with `rank` and waiting for `after`. Raises `BadRequest` naming
        ``tasks[i].task.<field>``."""
        items = [
            {
                "task": self.upload_task(task).to_dict(),
                "priority": priority,
                **ordering(rank, after),
            }
            for task in tasks
        ]
        return Batch.from_dict(self.transport.json("POST", "tasks/batch/", json={"tasks": items}))

    def task(self, key: str) -> TaskInfo:
        """The task `key`. Raises `NotFound` for a key that is not the caller's."""
        return TaskInfo.from_dict(self.transport.json("GET", f"tasks/{key}/"))

    def why(self, key: str) -> Why:
        """Why the task `key` waits: its place in its owner's queue, and node by node what keeps
        each from taking it. Raises `NotFound` for a key that is not the caller's."""
        return Why.from_dict(self.transport.json("GET", f"tasks/{key}/why/"))

    def deliveries(self, key: str) -> list[Delivery]:
        """The notifications and callbacks of the task `key`, oldest first. Raises `NotFound`
        for a key that is not the caller's."""
        answer = self.transport.json("GET", f"tasks/{key}/deliveries/")
        return [Delivery.from_dict(item) for item in answer or []]

    def tasks(
        self,
        *,
        state: TaskState | str | None = None,
        batch: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
    ) -> Iterator[TaskInfo]:
        """The caller's tasks, newest first, fetched page by page (at most `limit`)."""
        params: dict[str, Any] = {"state": state, "batch": batch, "owner": owner}
        params = {key: str(value) for key, value in params.items() if value is not None}
        count = 0
        cursor: str | None = None
        while True:
            page_size = 1000 if limit is None else max(1, min(1000, limit - count))
            query = {**params, "limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = self.transport.json("GET", "tasks/", params=query)
            for item in page.get("results") or []:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield TaskInfo.from_dict(item)
            cursor = page.get("next")
            if not cursor or (limit is not None and count >= limit):
                return

    def watch(self, key: str, *, timeout: float | None = None) -> Iterator[TaskInfo]:
        """Yield the task now and again on every change of state or node, until it is final.

        Long-polls the server, so a change is seen at once. Raises `WaitTimeout` past `timeout`
        seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        info = self.task(key)
        yield info
        while not info.state.final:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"task {key} is still {info.state} after {timeout} s")
            wait = self.transport.long_poll(left)
            asked = time.monotonic()
            answer = self.transport.json(
                "GET",
                f"tasks/{key}/",
                params={"wait": f"{max(1.0, wait):g}", "state": str(info.state)},
                timeout=wait + MAX_PAUSE,
            )
            news = TaskInfo.from_dict(answer)
            if (news.state, news.node) != (info.state, info.node):
                yield news
            elif time.monotonic() - asked < POLL_FLOOR:
                time.sleep(POLL_FLOOR)
            info = news

    def wait(
        self,
        key: str,
        *,
        timeout: float | None = None,
        on_change: Callable[[TaskInfo], None] | None = None,
    ) -> TaskInfo:
        """Wait until the task is final (`done`, `failed` or `cancelled`) and return it.

        `on_change` is called with the task now and on every change of state or node.
        """
        info: TaskInfo | None = None
        for info in self.watch(key, timeout=timeout):
            if on_change is not None:
                on_change(info)
        assert info is not None
        return info

    def log(
        self, key: str, *, stream: str = "stdout", follow: bool = False, offset: int = 0
    ) -> Iterator[LogPart]:
        """Yield what the task printed on `stream` (``stdout`` or ``stderr``) from byte
        `offset`, piece by piece: what the server has now, and with `follow`, what comes while
        the task runs, until it is final (`logs.follow`). The last piece tells `complete` and
        `truncated`. Raises `NotFound` for a key that is not the caller's."""
        return logs.follow(self.transport, key, stream, offset=offset, wait=follow)

    def cancel(self, key: str) -> TaskInfo:
        """Cancel the task. Raises `Conflict` when it is already `done` or `failed`."""
        return TaskInfo.from_dict(self.transport.json("POST", f"tasks/{key}/cancel/", safe=True))

    def retry(self, key: str) -> TaskInfo:
        """Run a task that did not succeed (`failed`, `cancelled`, or `done` without an OK
        verdict) again in place. Raises `Conflict` otherwise."""
        return TaskInfo.from_dict(self.transport.json("POST", f"tasks/{key}/retry/"))

    def rejudge(self, key: str) -> TaskInfo:
        """Judge a finished task again in place, whatever its verdict (after fixing a checker,
        say); its earlier runs stay in its `history`. Raises `Conflict` for one not finished."""
        return TaskInfo.from_dict(self.transport.json("POST", f"tasks/{key}/rejudge/"))

    def rejudge_matching(
        self,
        *,
        state: str | None = None,
        verdicts: Iterable[str] = (),
        batch: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
    ) -> int:
        """Judge again in place every finished task matching all the filters given (your own;
        an admin's, anyone's or `owner`'s); return how many."""
        body: dict[str, Any] = {"verdicts": list(verdicts)}
        for name, value in (("state", state), ("batch", batch), ("tag", tag), ("owner", owner)):
            if value is not None:
                body[name] = value
        return int(self.transport.json("POST", "tasks/rejudge/", json=body)["changed"])

    def set_rank(self, key: str, rank: int) -> TaskInfo:
        """Move the task within your own order (higher `rank` first, never ahead of others')."""
        answer = self.transport.json("POST", f"tasks/{key}/rank/", json={"rank": rank}, safe=True)
        return TaskInfo.from_dict(answer)

    def delete(self, key: str) -> None:
        """Delete the task (cancelling it first if it runs)."""
        self.transport.request("DELETE", f"tasks/{key}/")

    def result(self, key: str) -> Result:
        """The task's result, files as references. Raises `NotFinished` until it is `done`."""
        return Result.from_dict(self.transport.json("GET", f"tasks/{key}/result/"))

    def fetch_task(self, key: str, folder: PathLike) -> Task:
        """Write the task `key` as a task folder (its spec and files); return it."""
        info = self.task(key)
        assert info.task is not None
        return folders.write_task(self.transport, info.task, Path(folder), self.progress)

    def fetch_result(self, key: str, folder: PathLike) -> Result:
        """Write the result of task `key` into `folder` (``kolejka_result.json`` and the files).

        Raises `NotFinished` until the task is `done`.
        """
        result = self.result(key)
        return folders.write_result(self.transport, result, Path(folder), self.progress)

    def finish(self, info: TaskInfo, folder: PathLike) -> Result:
        """For a final task: download its result into `folder` and return it, or raise
        `TaskFailed` / `TaskCancelled`."""
        if info.state == TaskState.FAILED:
            raise TaskFailed(info)
        if info.state == TaskState.CANCELLED:
            raise TaskCancelled(info)
        return self.fetch_result(info.key, folder)

    def execute(
        self,
        task: Task | PathLike,
        result_folder: PathLike,
        *,
        folder: PathLike | None = None,
        priority: int = 0,
        timeout: float | None = None,
        on_change: Callable[[TaskInfo], None] | None = None,
    ) -> Result:
        """Submit the task, wait for it, download its result into `result_folder`; return it.

        The result's `status` is the verdict. Raises `TaskFailed` when the platform gave up,
        `TaskCancelled`, or `WaitTimeout` past `timeout` seconds.
        """
        info = self.submit(task, folder=folder, priority=priority)
        return self.finish(self.wait(info.key, timeout=timeout, on_change=on_change), result_folder)

    def batch(self, batch: str) -> BatchProgress:
        """The batch: its tasks counted by state and by verdict, and its times."""
        return BatchProgress.from_dict(self.transport.json("GET", f"batches/{batch}/"))

    def submit_array(
        self,
        tasks: Iterable[Task],
        folder: PathLike,
        *,
        priority: int = 0,
        on_page: Callable[[int], None] | None = None,
        rank: int = 0,
        after: Sequence[str | After] = (),
        each_after: Sequence[Sequence[str | After]] | None = None,
    ) -> str:
        """Queue `tasks` (their path files in `folder`) as one batch of any size, streamed in
        pages and queued all at once at the end; return the batch's key (`arrays.submit`).
        Every task waits for `after`, and the i-th also for `each_after[i]` (positions ``"#N"``
        name the batch's own tasks)."""
        orders = [
            ordering(rank, [*after, *(each_after[index] if each_after else ())])
            for index in range(len(each_after) if each_after else 0)
        ]
        return arrays.submit(
            self.transport, tasks, Path(folder), priority, on_page, orders or ordering(rank, after)
        )

    def batches(
        self, *, state: str | None = None, owner: str | None = None, limit: int | None = None
    ) -> Iterator[BatchProgress]:
        """The caller's batches, newest first (without counts: `batch` has them)."""
        params = {key: value for key, value in (("state", state), ("owner", owner)) if value}
        count = 0
        cursor: str | None = None
        while True:
            page_size = 1000 if limit is None else max(1, min(1000, limit - count))
            query = {**params, "limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = self.transport.json("GET", "batches/", params=query)
            for item in page.get("results") or []:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield BatchProgress.from_dict(item)
            cursor = page.get("next")
            if not cursor or (limit is not None and count >= limit):
                return

    def batch_tasks(self, batch: str) -> Iterator[TaskInfo]:
        """Every task of the batch, with its result once done."""
        return arrays.batch_tasks(self.transport, batch)

    def rerun_batch(self, batch: str, which: str, verdicts: Iterable[str] = ()) -> int:
        """Run finished tasks of the batch again in place: ``failed`` (every one without an OK
        verdict), ``all``, or ``verdict`` (those with one of `verdicts`); return how many."""
        answer = self.transport.json(
            "POST", f"batches/{batch}/rerun/", json={"which": which, "verdicts": list(verdicts)}
        )
        return int(answer["changed"])

    def set_batch_rank(self, batch: str, rank: int) -> int:
        """Give every unfinished task of the batch `rank`; return how many."""
        answer = self.transport.json(
            "POST", f"batches/{batch}/rank/", json={"rank": rank}, safe=True
        )
        return int(answer["changed"])

    def cancel_batch(self, batch: str) -> int:
        """Cancel the batch's unfinished tasks; return how many."""
        answer = self.transport.json("POST", f"batches/{batch}/cancel/", safe=True)
        return int(answer["changed"])

    def purge_batch(self, batch: str) -> None:
        """Delete the batch, its tasks and their results."""
        self.transport.request("DELETE", f"batches/{batch}/")

    def fetch_batch(
        self,
        batch: str,
        folder: PathLike,
        *,
        workers: int = arrays.WORKERS,
        on_task: Callable[[], object] | None = None,
    ) -> arrays.Fetched:
        """Write every result of the batch into ``folder/<position>/`` (`arrays.fetch`)."""
        return arrays.fetch(self.transport, batch, Path(folder), workers, on_task)

    # Schedules

    def add_schedule(
        self,
        cron: str,
        task: Task | PathLike,
        *,
        folder: PathLike | None = None,
        priority: int = 0,
        missed: str = "once",
    ) -> Schedule:
        """Upload the task's files and have the server queue it at every tick of `cron` (five
        fields, UTC); `missed`: ``once`` or ``skip`` for ticks no server ran in time."""
        spec = self.upload_task(task, folder)
        body = {"cron": cron, "task": spec.to_dict(), "priority": priority, "missed": missed}
        return Schedule.from_dict(self.transport.json("POST", "schedules/", json=body))

    def schedules(self) -> list[Schedule]:
        """The caller's schedules (an inspector's or admin's: everyone's)."""
        answer = self.transport.json("GET", "schedules/")
        return [Schedule.from_dict(item) for item in answer.get("results") or []]

    def schedule(self, key: str) -> Schedule:
        return Schedule.from_dict(self.transport.json("GET", f"schedules/{key}/"))

    def pause_schedule(self, key: str) -> Schedule:
        return Schedule.from_dict(self.transport.json("POST", f"schedules/{key}/pause/"))

    def resume_schedule(self, key: str) -> Schedule:
        """Run again from the next tick on (the ticks while paused do not run)."""
        return Schedule.from_dict(self.transport.json("POST", f"schedules/{key}/resume/"))

    def remove_schedule(self, key: str) -> None:
        """Remove the schedule; the runs it queued stay."""
        self.transport.request("DELETE", f"schedules/{key}/")

    def queue_stats(self) -> QueueStats:
        """Task counts by state and what the nodes run (a client sees its own tasks only)."""
        return QueueStats.from_dict(self.transport.json("GET", "queue/stats/"))
