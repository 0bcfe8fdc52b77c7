"""Batches of any size from the client's side: submission in pages, and fetching every result.

Submission opens a batch, sends its tasks in pages of at most `PAGE` (the server takes each in
one transaction) and seals it: the server runs nothing of it before the seal, so a submission
that dies half-way leaves an open batch that runs nothing (purge it). Files are uploaded once
per distinct path, however many tasks use them.

Fetching reads the batch's tasks a page at a time (results included), and writes each result
into ``DIR/<position>/`` with several workers at once, the small files of many results in one
bundle request. A folder whose ``kolejka_result.json`` already holds the same result is skipped,
so an interrupted fetch goes on where it stopped (the JSON is written last).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kolejka.common import RESULT_SPEC, FileSpec, Result, Task, save_result

from .blobs import download, upload_file
from .errors import Conflict, LocalFileError, TransferError
from .folders import prepare_folder, safe_target
from .models import TaskInfo
from .transport import Transport

PAGE = 1000  # tasks per page: the server's limit per request
GROUP = 100  # results one worker writes together, their small files fetched in bundles
WORKERS = 8


def upload_files(transport: Transport, task: Task, folder: Path, cache: dict[str, str]) -> Task:
    """`task` with its `path` files (in `folder`) as references; `cache` maps the paths already
    uploaded to their references, so each distinct file goes once."""
    files: dict[str, FileSpec] = {}
    for name, spec in task.files.items():
        if spec.path is not None:
            reference = cache.get(spec.path)
            if reference is None:
                reference = upload_file(transport, folder / spec.path).reference
                cache[spec.path] = reference
            spec = FileSpec(reference=reference)
        files[name] = spec
    return dataclasses.replace(task, files=files)


def submit(
    transport: Transport,
    tasks: Iterable[Task],
    folder: Path,
    priority: int = 0,
    on_page: Callable[[int], None] | None = None,
    ordering: Sequence[dict[str, Any]] | dict[str, Any] | None = None,
) -> str:
    """Open a batch, add `tasks` (path files in `folder`) page by page and seal it; return its
    key. `on_page` is told how many tasks are in after each page. `ordering` holds the
    ``rank`` and ``after`` fields of every task, or of each in turn. A page whose answer was
    lost and that the server already holds is not sent again."""
    key = str(transport.json("POST", "batches/", json={})["batch"])
    cache: dict[str, str] = {}
    start = 0
    page: list[dict[str, Any]] = []
    for index, task in enumerate(tasks):
        fields = ordering[index] if isinstance(ordering, Sequence) else ordering or {}
        spec = upload_files(transport, task, folder, cache).to_dict()
        page.append({"task": spec, "priority": priority, **fields})
        if len(page) == PAGE:
            start = _send(transport, key, start, page)
            page = []
            if on_page is not None:
                on_page(start)
    if page:
        start = _send(transport, key, start, page)
        if on_page is not None:
            on_page(start)
    transport.json("POST", f"batches/{key}/seal/", safe=True)
    return key


def _send(transport: Transport, key: str, start: int, page: list[dict[str, Any]]) -> int:
    try:
        answer = transport.json(
            "POST", f"batches/{key}/tasks/", json={"start": start, "tasks": page}, safe=True
        )
    except Conflict as error:
        # Sent again after a lost answer: the first copy is in if the size moved past it.
        if error.body.get("size") == start + len(page):
            return start + len(page)
        raise
    return int(answer["total"])


def batch_tasks(transport: Transport, key: str) -> Iterator[TaskInfo]:
    """Every task of batch `key`, a page of 1000 per request."""
    cursor: str | None = None
    while True:
        query = {"batch": key, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        page = transport.json("GET", "tasks/", params=query)
        for item in page.get("results") or []:
            yield TaskInfo.from_dict(item)
        cursor = page.get("next")
        if not cursor:
            return


@dataclass
class Fetched:
    """What a fetch did: results written, results already there, tasks without a result."""

    written: int = 0
    kept: int = 0
    missing: dict[str, str] = dataclasses.field(default_factory=dict)  # key: its state


def _local(result: Result) -> dict[str, Any]:
    """`result` as its folder's ``kolejka_result.json`` holds it: files by their names."""
    files = {name: FileSpec(path=name) for name in result.files}
    return dataclasses.replace(result, files=files).to_dict()


def _has(folder: Path, result: Result) -> bool:
    try:
        return bool(json.loads((folder / RESULT_SPEC).read_text()) == _local(result))
    except (OSError, ValueError):
        return False


def fetch(
    transport: Transport,
    key: str,
    folder: Path,
    workers: int = WORKERS,
    on_task: Callable[[], object] | None = None,
) -> Fetched:
    """Write every result of batch `key` into ``folder/<position>``; `on_task` is called per
    task handled. Raises `LocalFileError` for a folder that cannot be written, `TransferError`
    for content that does not match its reference."""
    root = prepare_folder(folder)
    fetched = Fetched()
    todo: list[tuple[Path, TaskInfo, Result]] = []
    tasks = list(batch_tasks(transport, key))
    width = len(str(max(len(tasks) - 1, 0)))
    for info in tasks:
        name = str(info.position if info.position is not None else info.key).zfill(width)
        if info.result is None:
            fetched.missing[info.key] = str(info.state)
            if on_task is not None:
                on_task()
        elif _has(root / name, info.result):
            fetched.kept += 1
            if on_task is not None:
                on_task()
        else:
            todo.append((root / name, info, info.result))
    groups = [todo[begin : begin + GROUP] for begin in range(0, len(todo), GROUP)]

    def one(group: list[tuple[Path, TaskInfo, Result]]) -> int:
        # Each worker has its own connection: a `requests` session is not shared across threads.
        own = Transport(transport.server, retries=transport.retries, backoff=transport.backoff)
        own.token, own.authenticate = transport.token, transport.authenticate
        try:
            return _write_group(own, group, on_task)
        finally:
            own.session.close()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        fetched.written = sum(pool.map(one, groups))
    return fetched


def _write_group(
    transport: Transport,
    group: list[tuple[Path, TaskInfo, Result]],
    on_task: Callable[[], object] | None,
) -> int:
    wanted = list(
        dict.fromkeys(
            str(spec.reference) for _, _, result in group for spec in result.files.values()
        )
    )
    with tempfile.TemporaryDirectory(prefix=".kolejka-", dir=group[0][0].parent) as spill:
        contents = _bundled(transport, wanted, Path(spill))
        for target, _info, result in group:
            target = prepare_folder(target)
            for name, spec in result.files.items():
                content = contents[str(spec.reference)]
                path = safe_target(target, name)
                try:
                    if isinstance(content, Path):
                        shutil.copyfile(content, path)
                    else:
                        path.write_bytes(content)
                except OSError as error:
                    raise LocalFileError(f"{path}: cannot write it: {error.strerror}") from None
            save_result(Result.from_dict(_local(result)), target)
            if on_task is not None:
                on_task()
    return len(group)


def _bundled(transport: Transport, wanted: list[str], spill: Path) -> dict[str, bytes | Path]:
    """The contents of `wanted`: small ones from bundles, each large one (the server bundles it
    with nothing) downloaded alone into `spill`."""
    contents: dict[str, bytes | Path] = {}
    rest = wanted
    while rest:
        answer = transport.request(
            "POST", "blobs/bundle/", json={"references": rest[:PAGE]}, safe=True
        )
        with tarfile.open(fileobj=io.BytesIO(answer.content)) as tar:
            for member in tar:
                stream = tar.extractfile(member)
                data = stream.read() if stream is not None else b""
                if hashlib.sha256(data).hexdigest() != member.name or member.name not in rest:
                    raise TransferError(f"blob {member.name}: the bundle's content does not match")
                contents[member.name] = data
        if rest[0] not in contents:
            path = spill / rest[0]
            download(transport, rest[0], path)
            contents[rest[0]] = path
        rest = [reference for reference in rest if reference not in contents]
    return contents
