"""Task and result folders on the client's side: uploading a task's files, and writing the files
of a task or result fetched from the server into a folder without ever leaving it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from kolejka.common import FileSpec, Result, Task, check_task_files, save_result, save_task

from .blobs import ProgressFactory, download, upload_file
from .errors import LocalFileError, TransferError
from .transport import Transport


def upload_task(
    transport: Transport,
    task: Task,
    folder: str | os.PathLike[str] | None,
    progress: ProgressFactory | None = None,
) -> Task:
    """Return `task` with every `path` file (relative to `folder`) uploaded and replaced by its
    reference. Content the server already holds for the caller is not sent again.

    Raises `SpecError` (from the format's rules) for a file missing from `folder` or leading
    out of it.
    """
    if any(spec.path is not None for spec in task.files.values()):
        if folder is None:
            raise LocalFileError(
                "the task names files by path: give the folder they are in (folder=...)"
            )
        check_task_files(task, folder, local=False)
    root = Path(folder) if folder is not None else Path()
    files: dict[str, FileSpec] = {}
    for name, spec in task.files.items():
        if spec.path is not None:
            blob = upload_file(transport, root / spec.path, progress)
            spec = FileSpec(reference=blob.reference)
        files[name] = spec
    return dataclasses.replace(task, files=files)


def upload_result(
    transport: Transport,
    result: Result,
    folder: str | os.PathLike[str] | None,
    progress: ProgressFactory | None = None,
) -> Result:
    """Return `result` with every `path` file (relative to the result `folder`) uploaded and
    replaced by its reference. Raises `LocalFileError` for a file missing from `folder` or
    leading out of it (through a symlink)."""
    root = Path(folder if folder is not None else ".").resolve()
    files: dict[str, FileSpec] = {}
    for name, spec in result.files.items():
        if spec.path is not None:
            source = (root / spec.path).resolve()
            if not source.is_relative_to(root) or not source.is_file():
                raise LocalFileError(f"files.{name}: {spec.path} is not a file in {root}")
            spec = FileSpec(reference=upload_file(transport, source, progress).reference)
        files[name] = spec
    return dataclasses.replace(result, files=files)


def prepare_folder(folder: Path) -> Path:
    """Make `folder` (and its parents) if missing; return its resolved path.

    Raises `LocalFileError` when it exists and is not a folder or cannot be made.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LocalFileError(f"{folder}: exists and is not a folder") from None
    except OSError as error:
        raise LocalFileError(f"{folder}: cannot make it: {error.strerror or error}") from None
    return folder.resolve()


def safe_target(root: Path, name: str) -> Path:
    """The path of file `name` inside folder `root`, with its parent folders made.

    `name` has passed `check_name` (the format's parsers call it), so it holds no ``..`` and is
    not absolute; this also refuses parent folders that are symlinks or files, so that no
    write lands outside `root`, whatever `root` already held.
    """
    current = root
    for part in name.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            raise LocalFileError(f"{name}: {current} is a symlink; refusing to write through it")
        try:
            current.mkdir()
        except FileExistsError:
            if not current.is_dir():
                raise LocalFileError(f"{name}: {current} is a file, not a folder") from None
        except OSError as error:
            raise LocalFileError(f"{current}: cannot make it: {error.strerror or error}") from None
    target = current / name.rsplit("/", 1)[-1]
    if target.is_dir() and not target.is_symlink():
        raise LocalFileError(f"{name}: {target} is a folder; cannot write a file there")
    return target


def download_files(
    transport: Transport,
    files: Mapping[str, FileSpec],
    folder: Path,
    progress: ProgressFactory | None = None,
) -> dict[str, FileSpec]:
    """Download every file of `files` (references) into `folder`; return them as `path` files."""
    root = prepare_folder(folder)
    written: dict[str, FileSpec] = {}
    for name, spec in files.items():
        if spec.reference is None:
            raise TransferError(f"files.{name}: the server sent a path, not a blob reference")
        download(transport, spec.reference, safe_target(root, name), progress, label=name)
        written[name] = FileSpec(path=name)
    return written


def write_task(
    transport: Transport, task: Task, folder: Path, progress: ProgressFactory | None = None
) -> Task:
    """Write `task` (files as references) as a task folder; return it with files as paths."""
    local = dataclasses.replace(task, files=download_files(transport, task.files, folder, progress))
    save_task(local, folder)
    return local


def write_result(
    transport: Transport, result: Result, folder: Path, progress: ProgressFactory | None = None
) -> Result:
    """Write `result` (files as references) as a result folder; return it with files as paths.

    ``kolejka_result.json`` is written last, so a folder that has it holds every file.
    """
    files = download_files(transport, result.files, folder, progress)
    local = dataclasses.replace(result, files=files)
    save_result(local, folder)
    return local
