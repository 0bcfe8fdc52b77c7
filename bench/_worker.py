"""Helpers shared by the worker and observer benchmarks (not a benchmark itself)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kolejka.worker import WorkerConfig  # noqa: E402
from tests.worker.helpers import has_probe  # noqa: E402

# A tag of this run's own: test runs of other branches rebuild the shared tag from their recipes.
BUSYBOX = f"kolejka/busybox:bench-{os.getpid()}"
CGROUP_BASE = "kolejka-bench"


@contextlib.contextmanager
def image() -> Iterator[str]:
    """Tag this branch's busybox image for the benchmark (rebuilding it if needed); untag after."""
    for _ in range(3):
        if not has_probe("kolejka/busybox:latest"):
            subprocess.run([str(ROOT / "images" / "build")], check=True)
        subprocess.run(["docker", "tag", "kolejka/busybox:latest", BUSYBOX], check=True)
        if has_probe(BUSYBOX):
            break
    else:
        raise SystemExit("kolejka/busybox:latest lacks kolejka-probe; run images/build")
    try:
        yield BUSYBOX
    finally:
        subprocess.run(["docker", "rmi", BUSYBOX], capture_output=True, check=False)
        _remove_bases()


def _remove_bases() -> None:
    """Remove the benchmarks' base cgroups (empty by now) from every hierarchy."""
    from kolejka.observer.cgroups import Hierarchy, remove_tree

    hierarchy = Hierarchy.discover()
    for root in sorted(set(hierarchy.mounts.values()) | set(hierarchy.extra)):
        for base in root.glob(f"{CGROUP_BASE}*"):
            remove_tree(base, time.monotonic() + 5)


def task_folder(parent: Path, name: str, **task: Any) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    task.setdefault("image", BUSYBOX)
    (folder / "kolejka_task.json").write_text(json.dumps(task))
    return folder


def config(**changes: Any) -> WorkerConfig:
    fields: dict[str, Any] = {"cgroup_base": CGROUP_BASE}
    fields.update(changes)
    return WorkerConfig(**fields)


def summary(values: Sequence[float], digits: int = 4) -> dict[str, float]:
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "min": round(ordered[0], digits),
        "p50": round(statistics.median(ordered), digits),
        "p90": round(rank(0.9), digits),
        "p99": round(rank(0.99), digits),
        "max": round(ordered[-1], digits),
        "mean": round(statistics.fmean(ordered), digits),
    }


def timed(command: Sequence[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


@contextlib.contextmanager
def observer() -> Iterator[str]:
    """A kolejka-observer for the benchmark; yields its socket."""
    from kolejka.observer.client import ObserverClient, ObserverError

    with tempfile.TemporaryDirectory(prefix="kolejka-bench-") as folder:
        path = f"{folder}/observer.sock"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kolejka.observer.cli",
                "--socket",
                path,
                "--cgroup-base",
                CGROUP_BASE + "-observer",
            ],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                ObserverClient(path, timeout=2).info()
                break
            except ObserverError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("kolejka-observer did not start") from None
                time.sleep(0.05)
        try:
            yield path
        finally:
            process.terminate()
            process.wait(timeout=30)


def emit(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
