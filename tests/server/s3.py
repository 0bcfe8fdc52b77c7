"""An S3 server on loopback for the S3 blob store's tests: moto's server mode in its own process,
on a port it chose itself, speaking the S3 protocol over HTTP."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

# Prints the port it listens on, then serves until its standard input closes.
SERVE = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "kolejka-test",
    "AWS_SECRET_ACCESS_KEY": "kolejka-test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "NO_PROXY": "127.0.0.1",
}


class S3:
    """The moto server's endpoint, and a bucket of its own for each `settings` asked for."""

    def __init__(self, endpoint: str, process: subprocess.Popen[str] | None = None) -> None:
        self.endpoint = endpoint
        self.process = process
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def settings(self, prefix: str = "grid") -> dict[str, str]:
        """A server's settings for a fresh bucket on this endpoint."""
        bucket = f"kolejka-{secrets.token_hex(4)}"
        self.client.create_bucket(Bucket=bucket)
        return {
            "KOLEJKA_BLOB_STORE": "s3",
            "KOLEJKA_S3_BUCKET": bucket,
            "KOLEJKA_S3_ENDPOINT": self.endpoint,
            "KOLEJKA_S3_PREFIX": prefix,
            **CREDENTIALS,
        }

    def stop(self) -> None:
        """Stop the moto server before its block ends."""
        assert self.process is not None
        stop(self.process)

    def keys(self, settings: dict[str, str], under: str = "") -> list[str]:
        """The keys in a server's bucket under its prefix and `under`, and the keys of its
        unfinished multipart uploads."""
        bucket, prefix = settings["KOLEJKA_S3_BUCKET"], settings["KOLEJKA_S3_PREFIX"] + "/" + under
        listed = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        uploads = self.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return [entry["Key"] for entry in listed.get("Contents", [])] + [
            upload["Key"] for upload in uploads.get("Uploads", [])
        ]


@contextmanager
def moto_server() -> Iterator[S3]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"the moto server did not start (it exited {process.poll()})"
        yield S3(f"http://127.0.0.1:{port}", process)
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Stop a moto server (again: nothing)."""
    assert process.stdin is not None
    if not process.stdin.closed:
        process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
