"""Upload and download of a 1 GiB blob through the production server: MB/s each way and the
server's peak resident memory (every gunicorn process, sampled every 50 ms). Prints JSON.

    .venv/bin/python bench/blob_transfer.py [--size 1G]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _servers import servers

from kolejka.common.units import parse_memory

CHUNK = 1024 * 1024


class PeakRss:
    """The largest resident set of any process of the server, and of all of them together."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.one = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            sizes = []
            for process in [self.root, *self.root.children(recursive=True)]:
                try:
                    sizes.append(process.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue
            self.one = max(self.one, *sizes)
            self.total = max(self.total, sum(sizes))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def server_process(port: int) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(part.endswith("kolejka-server") for part in cmdline) and "serve" in cmdline:
            try:
                if any(conn.laddr.port == port for conn in process.net_connections("tcp")):
                    return process
            except psutil.AccessDenied:
                continue
    raise RuntimeError(f"no kolejka-server listens on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="blob size (default 1G)")
    size = parse_memory(parser.parse_args().size, "--size", minimum=1)
    with tempfile.TemporaryDirectory(prefix="kolejka-blob-") as folder:
        source = Path(folder) / "blob"
        digest = hashlib.sha256()
        with open(source, "wb") as handle:
            block = os.urandom(CHUNK)
            for index in range(0, size, CHUNK):
                piece = block[: min(CHUNK, size - index)]
                piece = index.to_bytes(8, "little") + piece[8:]  # no two chunks alike
                digest.update(piece)
                handle.write(piece)
        with servers(("sqlite",), KOLEJKA_BLOB_MAX_SIZE="2G") as running:
            server = running["sqlite"]
            alice = server.api("alice")
            root = server_process(int(server.url.rsplit(":", 1)[1]))
            idle = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            with PeakRss(root) as peak:
                start = time.perf_counter()
                with open(source, "rb") as handle:
                    answer = alice.post("blobs/", data=handle)
                upload = time.perf_counter() - start
                assert answer.status_code == 201, answer.text
                assert answer.json()["reference"] == digest.hexdigest()
                start = time.perf_counter()
                received = 0
                with alice.get(f"blobs/{digest.hexdigest()}/", stream=True) as download:
                    for chunk in download.iter_content(CHUNK):
                        received += len(chunk)
                fetch = time.perf_counter() - start
                assert received == size
    mib = size / 2**20
    print(
        json.dumps(
            {
                "size_mib": round(mib),
                "upload_mib_per_s": round(mib / upload, 1),
                "download_mib_per_s": round(mib / fetch, 1),
                "server_rss_idle_mib": round(idle / 2**20, 1),
                "server_peak_rss_one_process_mib": round(peak.one / 2**20, 1),
                "server_peak_rss_all_processes_mib": round(peak.total / 2**20, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
