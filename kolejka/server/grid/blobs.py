"""Blob rules: who may read a blob, quotas, storing an upload, and garbage collection.

Contents are stored once across users, but access is per user: a user reads a blob they
uploaded (a `BlobGrant`), one that a task or result of theirs references, one that a task whose
lease their node holds references, or, for foremen, an image. To anyone else a blob does not exist,
and uploading content someone else stored answers exactly as for new content (201, the whole body
read and hashed, the size counted in the quota), so the API is no oracle for stored content.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from kolejka.common.blobs import is_reference

from . import blobstore
from .blobstore import Received
from .errors import QuotaExceeded
from .models import Blob, BlobGrant, Image, Role, ScheduleFile, TaskFile, User

log = logging.getLogger(__name__)


def readable(user: User, references: Iterable[str]) -> set[str]:
    """The subset of `references` that `user` may read."""
    wanted = set(references)
    if not wanted:
        return set()
    if user.sees_everything:
        return set(Blob.objects.filter(reference__in=wanted).values_list("reference", flat=True))
    found = set(
        BlobGrant.objects.filter(user=user, blob_id__in=wanted).values_list("blob_id", flat=True)
    )
    if found < wanted:
        found |= set(
            TaskFile.objects.filter(blob_id__in=wanted - found, task__owner=user).values_list(
                "blob_id", flat=True
            )
        )
    if found < wanted and user.role in (Role.FOREMAN, Role.ADMIN):
        found |= set(
            TaskFile.objects.filter(
                blob_id__in=wanted - found,
                output=False,
                task__lease__ended=None,
                task__lease__node__owner=user,
            ).values_list("blob_id", flat=True)
        )
        found |= set(
            Image.objects.filter(blob_id__in=wanted - found).values_list("blob_id", flat=True)
        )
    return found


def readable_blob(user: User, reference: str) -> Blob | None:
    if not is_reference(reference) or not readable(user, [reference]):
        return None
    return Blob.objects.filter(reference=reference).first()


def usage(user: User) -> int:
    """Bytes of blobs `user` uploaded: what counts against their quota."""
    total = BlobGrant.objects.filter(user=user).aggregate(total=Sum("blob__size"))["total"]
    return int(total or 0)


def quota(user: User) -> int:
    return user.quota if user.quota is not None else int(settings.USER_QUOTA)


def check_quota(user: User, size: int) -> None:
    used = usage(user)
    if used + size > quota(user):
        raise QuotaExceeded(
            f"storing {size} more bytes would pass your quota of {quota(user)} bytes "
            f"({used} used); delete old tasks and let garbage collection run, or ask an admin"
        )


@dataclass(frozen=True)
class Stored:
    blob: Blob
    new_for_user: bool


def store(user: User, received: Received) -> Stored:
    """Keep an upload for `user`: the content goes into the store unless it is there already."""
    now = timezone.now()
    content = blobstore.backend()
    with transaction.atomic():
        # One upload of a user at a time decides their quota.
        User.objects.select_for_update().filter(pk=user.pk).first()
        # Users storing the same new content at once (two servers, two foremen's empty stderr)
        # all insert: the unique key makes each wait for the first's commit and then insert
        # nothing, and every one goes on with the first's row, locked.
        Blob.objects.bulk_create(
            [Blob(reference=received.reference, size=received.size, touched=now)],
            ignore_conflicts=True,
        )
        blob = Blob.objects.select_for_update().get(reference=received.reference)
        granted = BlobGrant.objects.filter(user=user, blob=blob).exists()
        if not granted:
            check_quota(user, received.size)
        if blob.touched == now:  # this upload's row
            content.adopt(received)
        else:
            Blob.objects.filter(pk=blob.pk).update(touched=now)
            if not content.has(blob.reference):
                log.warning("blob %s had no content; restored from an upload", blob.reference)
                content.adopt(received)
        if not granted:
            BlobGrant.objects.create(user=user, blob=blob)
    return Stored(blob, not granted)


def touch(references: Iterable[str], now: datetime) -> int:
    """Mark blobs as in use now (inside the caller's transaction); return how many exist.

    On PostgreSQL this locks their rows, so garbage collection, which locks them too, either
    deletes a blob before a submission names it (the submission then finds it missing) or sees
    it touched and keeps it.
    """
    wanted = set(references)
    return Blob.objects.filter(reference__in=wanted).update(touched=now) if wanted else 0


def collect_garbage(now: datetime, grace: float, dry_run: bool = False) -> list[Blob]:
    """Delete blobs no task, result, schedule or image references and nobody touched within `grace`
    seconds; return them. Also removes temp files of uploads that died with their process.

    A blob's content is moved aside (trashed) while its row is locked and deleted, and only
    removed after the deletion committed: an upload of the same content waits on the row lock,
    then finds no row and stores its own copy, which the trash's removal does not touch."""
    store = blobstore.backend()
    cutoff = now - timedelta(seconds=grace)
    unused = Blob.objects.filter(touched__lt=cutoff).filter(
        ~Exists(TaskFile.objects.filter(blob=OuterRef("pk"))),
        ~Exists(Image.objects.filter(blob=OuterRef("pk"))),
        ~Exists(ScheduleFile.objects.filter(blob=OuterRef("pk"))),
    )
    collected = []
    for reference in list(unused.values_list("reference", flat=True)):
        with transaction.atomic():
            locked = unused.filter(reference=reference)
            if connection.vendor == "postgresql":
                # The loser of a race with a submission touching this blob skips it.
                locked = locked.select_for_update(skip_locked=True, of=("self",))
            blob = locked.first()
            if blob is None:
                continue
            collected.append(blob)
            if dry_run:
                continue
            trashed = store.trash(reference)
            try:
                BlobGrant.objects.filter(blob=blob).delete()
                blob.delete()
            except Exception:
                if trashed is not None:
                    store.untrash(trashed)
                raise
        if trashed is not None:
            store.discard(trashed)
    if not dry_run:
        store.sweep(cutoff.timestamp())
    return collected
