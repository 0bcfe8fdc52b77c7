"""The foreman's side of the API: nodes, claims, leases, results and stored images.

`KolejkaClient` carries these methods; they need a user with the ``foreman`` role (images,
draining and forgetting: ``admin``; listing nodes: anyone). Which requests are retried after a
failure: a heartbeat, a result, a failure report, a release and a log chunk are (the server
refuses a second one or skips bytes it has, so a repeat changes nothing and a lost answer is not
a lost report); a claim is repeated only when it surely never reached the server, since a
repeated claim could take a second task.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kolejka.common import Capacity, Limits, Result, Task

from . import folders
from .blobs import ProgressFactory
from .models import Claim, Heartbeat, Image, Lease, Node, TaskInfo, claimed_of
from .transport import MAX_PAUSE, READ_TIMEOUT, Transport

PathLike = str | os.PathLike[str]


def _lease_id(lease: Lease | str) -> str:
    return lease.id if isinstance(lease, Lease) else lease


class NodeApi:
    """Methods for foremen; mixed into `KolejkaClient`."""

    transport: Transport
    progress: ProgressFactory | None

    def register_node(
        self,
        name: str,
        capacity: Capacity,
        *,
        tags: Iterable[str] = (),
        defaults: Limits | None = None,
        slots: int = 1,
    ) -> Node:
        """Register the node `name` (or update it): what it has, its tags, its default limits."""
        body = {
            "capacity": capacity.to_dict(),
            "tags": list(tags),
            "defaults": (defaults or Limits()).to_dict(),
            "slots": slots,
        }
        return Node.from_dict(self.transport.json("PUT", f"nodes/{name}/", json=body))

    def report_health(self, name: str, problems: list[str]) -> Node:
        """Tell the server what the node's health check found (`[]`: healthy). A node with
        problems is given no task until it reports none."""
        answer = self.transport.json(
            "POST", f"nodes/{name}/health/", json={"problems": problems}, safe=True
        )
        return Node.from_dict(answer)

    def nodes(self) -> list[Node]:
        """The registered nodes (a foreman sees its own, everyone else all)."""
        page = self.transport.json("GET", "nodes/")
        items = page.get("results", []) if isinstance(page, dict) else page
        return [Node.from_dict(item) for item in items or []]

    def drain_node(self, name: str, drain: bool = True) -> Node:
        """Admin: stop giving the node new tasks (`drain` false undoes it)."""
        answer = self.transport.json("POST", f"nodes/{name}/drain/", json={"drain": drain})
        return Node.from_dict(answer)

    def forget_node(self, name: str) -> None:
        """Admin: remove a node gone for good. Raises `Conflict` while it holds leases."""
        self.transport.request("DELETE", f"nodes/{name}/")

    def claim(
        self, node: str, free: Capacity, *, idle: bool, wait: float = 30, count: int = 1
    ) -> Claim:
        """Take the first queued task that fits `free` (up to `count` that fit it together, in
        `claimed`), waiting up to `wait` seconds for one.

        The answer's `lease` and `task` are `None` when none came; `drain` says to stop
        claiming. The server cuts `wait` to its maximum (`Transport.long_poll`).
        """
        wait = self.transport.long_poll(wait)
        body: dict[str, Any] = {"free": free.to_dict(), "idle": idle, "wait": wait}
        if count > 1:
            body["max"] = count
        answer = self.transport.json(
            "POST", f"nodes/{node}/claim/", json=body, safe=False, timeout=wait + MAX_PAUSE
        )
        return Claim.from_dict(answer)

    def heartbeat(self, lease: Lease | str, *, running: bool = True) -> Heartbeat:
        """Renew the lease. `cancel` in the answer: the owner cancelled, kill the task. Raises
        `LeaseLost` when the lease is gone (kill the task's copy too)."""
        answer = self.transport.json(
            "POST", f"leases/{_lease_id(lease)}/heartbeat/", json={"running": running}, safe=True
        )
        return Heartbeat.from_dict(answer)

    def append_log(
        self,
        lease: Lease | str,
        stream: str,
        offset: int,
        data: bytes,
        *,
        truncated: bool = False,
        timeout: float = READ_TIMEOUT,
    ) -> int:
        """Send a chunk (at most 64 KiB) of the leased task's `stream` that starts at byte
        `offset`; return the stream's end on the server, where the next chunk starts. Sending
        a chunk again is harmless. `truncated`: the node's output cap ends the stream here.
        Raises `LeaseLost` when the lease no longer runs the task, `Conflict` for an offset
        past the server's end."""
        body = {
            "stream": stream,
            "offset": offset,
            "data": base64.b64encode(data).decode("ascii"),
            "truncated": truncated,
        }
        answer = self.transport.json(
            "POST", f"leases/{_lease_id(lease)}/log/", json=body, safe=True, timeout=timeout
        )
        return int(answer["next"])

    def fetch_task_files(self, task: Task, folder: PathLike) -> Task:
        """Download a claimed task (files as references) into `folder` as a task folder."""
        return folders.write_task(self.transport, task, Path(folder), self.progress)

    def post_result(
        self, lease: Lease | str, result: Result, folder: PathLike | None = None
    ) -> TaskInfo:
        """Report the result of the leased task; return the task, now `done`.

        Files of `result` given by `path` are uploaded from `folder` first (a result folder as
        the worker writes it). Raises `LeaseLost` for a stale lease, `Conflict` when a result
        was already accepted (also when a repeat of this call lost its first answer).
        """
        return self.post_result_and_claim(lease, result, folder, 0)[0]

    def post_result_and_claim(
        self, lease: Lease | str, result: Result, folder: PathLike | None, count: int
    ) -> tuple[TaskInfo, list[tuple[Lease, TaskInfo]]]:
        """`post_result`, also taking up to `count` next tasks for the lease's node in the same
        round trip (a claim that does not wait, in what the node has free once this task
        ended); return the task and the (lease, task) pairs claimed."""
        uploaded = folders.upload_result(self.transport, result, folder, self.progress)
        params = {"claim": count} if count else None
        answer = self.transport.json(
            "POST",
            f"leases/{_lease_id(lease)}/result/",
            json=uploaded.to_dict(),
            params=params,
            safe=True,
        )
        return TaskInfo.from_dict(answer), claimed_of(answer.get("claimed", []))

    def fail(self, lease: Lease | str, error: str, *, retry: bool = True) -> TaskInfo:
        """Report a platform failure of the leased task; it is queued again while attempts
        remain and `retry` is true, else it is `failed` with `error`."""
        answer = self.transport.json(
            "POST",
            f"leases/{_lease_id(lease)}/fail/",
            json={"error": error, "retry": retry},
            safe=True,
        )
        return TaskInfo.from_dict(answer)

    def release(self, lease: Lease | str) -> None:
        """Hand the leased task back without counting an attempt (the foreman is stopping)."""
        self.transport.request("POST", f"leases/{_lease_id(lease)}/release/", safe=True)

    def images(self, name: str | None = None) -> list[Image]:
        """Images stored as blobs (``docker save`` tarballs), by `name` if given."""
        params: dict[str, Any] = {"name": name} if name is not None else {}
        page = self.transport.json("GET", "images/", params=params)
        return [Image.from_dict(item) for item in page.get("results") or []]

    def put_image(self, name: str, reference: str) -> Image:
        """Admin: store the blob `reference` (a ``docker save`` tarball) as image `name`."""
        body = {"name": name, "reference": reference}
        return Image.from_dict(self.transport.json("PUT", "images/", json=body))
