"""The original kolejka's wire format: the JSON shapes its server answered and its callbacks
sent, written from our tasks and blobs. The legacy API (`views/legacy.py`) and `notify` use
it; the rules stay the grid's own. A task's id in the original's shapes is its key, and a blob's
reference key is its sha256 (ours has no references apart from the content)."""

from __future__ import annotations

from typing import Any

from .models import Blob, BlobGrant, Task, User

# The original's `/settings/` named the hash its client must use for blob keys.
BLOB_HASH_ALGORITHM = "sha256"


def task_document(task: Task) -> dict[str, Any]:
    """`task` as the original's server showed it: its kolejka_task.json, its id the task's key."""
    return {**task.spec, "id": task.key}


def result_document(task: Task) -> dict[str, Any] | None:
    """The result of `task` as the original's server showed it (`None` while it has none)."""
    if task.result is None:
        return None
    return {**task.result, "id": task.key}


def reference_document(user: User, blob: Blob) -> dict[str, Any]:
    """`user`'s reference to `blob`, in the original's shape."""
    grant = BlobGrant.objects.filter(user=user, blob=blob).first()
    return {
        "key": blob.reference,
        "blob": blob.reference,
        "size": blob.size,
        "time_create": grant.created if grant is not None else blob.created,
        "time_access": blob.touched,
    }


def callback_body(task: Task) -> dict[str, Any]:
    """What the original's server POSTed to a task's callback URL when its result came."""
    return {"task": task_document(task), "result": result_document(task)}
