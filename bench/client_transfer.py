"""How fast `KolejkaClient` moves a large blob to and from a real server, and how much memory
the client needs to do it (it streams, so the figure should not grow with the file's size).

    .venv/bin/python bench/client_transfer.py [SIZE_MIB]

Prints one JSON object: throughput of upload and download in MiB/s and the client's peak
resident memory before and after the transfers.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.client.live import live_server


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as scratch:
        root = Path(scratch)
        (root / "server").mkdir()
        source = root / "big.bin"
        with open(source, "wb") as handle:
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                handle.write(block)
        with live_server(root / "server") as server:
            client = server.client("alice")
            client.whoami()
            before = peak_rss_mib()
            start = time.perf_counter()
            blob = client.put_blob(source)
            upload = time.perf_counter() - start
            start = time.perf_counter()
            client.get_blob(blob.reference, root / "copy.bin")
            download = time.perf_counter() - start
            after = peak_rss_mib()
    print(
        json.dumps(
            {
                "benchmark": "client_transfer",
                "size_mib": size_mib,
                "upload_mib_per_s": round(size_mib / upload, 1),
                "download_mib_per_s": round(size_mib / download, 1),
                "client_peak_rss_mib_before": round(before, 1),
                "client_peak_rss_mib_after": round(after, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
