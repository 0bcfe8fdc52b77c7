"""The blob store in an S3-compatible bucket: one object per content, ``PREFIX/sha256/abcd...``.

boto3 itself rather than django-storages: a Storage saves a file under a name it is given, but an
upload here must be hashed while it streams and named only after (`receive` → `adopt`), and
garbage collection needs a move-aside that a racing upload can see (`trash`). Those are a few
plain S3 calls.

S3 has no rename, so a move is a server-side copy and a delete. An upload streams (through
`Hashing`, in parts of `PART` bytes, one part in memory at a time) to ``PREFIX/tmp/upload-*``,
then is copied to its content key; a collected blob is copied to ``PREFIX/tmp/trash-*`` and
deleted before its row goes, and the trash is deleted after the row went (`blobs.collect_garbage`).
What a dead process left under ``tmp/`` (objects and unfinished multipart uploads) `sweep` takes.
Credentials and the region come from the standard AWS variables and files.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .blobstore import Hashing, Readable, Received, Trashed
from .errors import Unavailable

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

PART = 8 << 20
# Streamed parts one at a time, in this thread: memory stays at one part per upload, and what
# `Hashing` raises reaches the caller as it is. A copy is one request up to S3's 5 GiB limit.
UPLOADS = TransferConfig(use_threads=False, multipart_threshold=PART, multipart_chunksize=PART)
COPIES = TransferConfig(
    use_threads=False, multipart_threshold=5 << 30, multipart_chunksize=512 << 20
)
MISSING = ("404", "NoSuchKey", "NotFound")
# When a temporary key was made, by this server's clock: some S3 servers (moto) give unfinished
# multipart uploads no true start time.
MADE = re.compile(r"-(\d{10,})-[0-9a-f]{32}$")


def _made(key: str, listed: datetime) -> float:
    found = MADE.search(key)
    return float(found.group(1)) if found else listed.timestamp()


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in MISSING


@contextmanager
def _answering() -> Iterator[None]:
    """The store's failures as the API's 503 (clients repeat), not a 500."""
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise Unavailable(f"the server cannot reach its blob store; try again ({error})") from error


class S3Store:
    def __init__(self, bucket: str, prefix: str, endpoint: str) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"mode": "standard", "max_attempts": 3},
                # The threads of a server process share the client and its connections.
                max_pool_connections=64,
            ),
        )

    def key(self, reference: str) -> str:
        return f"{self.prefix}sha256/{reference}"

    def _temporary(self, kind: str) -> str:
        return f"{self.prefix}tmp/{kind}-{int(time.time())}-{uuid.uuid4().hex}"

    def _move(self, source: str, target: str) -> None:
        copy = {"Bucket": self.bucket, "Key": source}
        # A checksum of the copy's own: some servers (moto) keep the source's parts checksum
        # for it, which then fails the download's whole-object check.
        self.client.copy(
            copy,  # type: ignore[arg-type]
            self.bucket,
            target,
            ExtraArgs={"ChecksumAlgorithm": "CRC32"},
            Config=COPIES,
        )
        self.client.delete_object(Bucket=self.bucket, Key=source)

    @contextmanager
    def receive(
        self, stream: Readable, length: int | None, cap: int, expected: str | None
    ) -> Iterator[Received]:
        reader = Hashing(stream, length, cap)
        temporary = self._temporary("upload")
        try:
            with _answering():
                # A failed multipart upload is aborted by the transfer itself.
                self.client.upload_fileobj(
                    cast(Any, reader), self.bucket, temporary, Config=UPLOADS
                )
            yield Received(reader.reference(expected), reader.size, temporary)
        finally:
            with _answering():
                self.client.delete_object(Bucket=self.bucket, Key=temporary)

    def adopt(self, received: Received) -> None:
        with _answering():
            self._move(received.handle, self.key(received.reference))

    def has(self, reference: str) -> bool:
        with _answering():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(reference))
            except ClientError as error:
                if _missing(error):
                    return False
                raise
        return True

    def open(self, reference: str, start: int = 0) -> BinaryIO | None:
        with _answering():
            try:
                key = self.key(reference)
                # No range from 0: S3 refuses any range of an empty object (416).
                answer = (
                    self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-")
                    if start
                    else self.client.get_object(Bucket=self.bucket, Key=key)
                )
            except ClientError as error:
                if _missing(error):
                    return None
                raise
        # A stream off the socket: read(size) in pieces, close() hands the connection back.
        return cast(BinaryIO, answer["Body"])

    def trash(self, reference: str) -> Trashed | None:
        target = self._temporary(f"trash-{reference}")
        with _answering():
            try:
                self._move(self.key(reference), target)
            except ClientError as error:
                if _missing(error):
                    return None
                raise
        return Trashed(reference, target)

    def untrash(self, trashed: Trashed) -> None:
        with _answering():
            self._move(trashed.handle, self.key(trashed.reference))

    def discard(self, trashed: Trashed) -> None:
        with _answering():
            self.client.delete_object(Bucket=self.bucket, Key=trashed.handle)

    def sweep(self, older_than: float) -> int:
        prefix = f"{self.prefix}tmp/"
        removed = 0
        with _answering():
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for entry in page.get("Contents", []):
                    if _made(entry["Key"], entry["LastModified"]) < older_than:
                        self.client.delete_object(Bucket=self.bucket, Key=entry["Key"])
                        removed += 1
            for uploads in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for upload in uploads.get("Uploads", []):
                    if _made(upload["Key"], upload["Initiated"]) < older_than:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        return removed

    def problem(self) -> str | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as error:
            return f"the S3 bucket {self.bucket!r} does not answer: {error}"
        return None
