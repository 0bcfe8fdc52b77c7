"""Prometheus metrics, served at ``/metrics`` to inspectors and admins (docs/operations.md).

What the database holds (tasks by state, nodes by state, the blob store) is read at each scrape,
so every server process tells the same. What happens in a request (a claim's decision, a task's
wait and run, each verdict) is counted by the process that served it: `kolejka-server serve`
gives its workers one multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``, set before this module
is imported, `serve.py`), so a scrape of any worker sums them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from . import nodes
from .models import Blob, Node, State, Task

# Seconds, from a judge's quick tests to a lab's day-long jobs.
_SPANS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
# Never registered in the process's default registry: a scrape collects them (`exposition`).
QUEUE_WAIT = Histogram(
    "kolejka_queue_wait_seconds",
    "From a task's submission to the claim that started its attempt",
    buckets=_SPANS,
    registry=None,
)
RUN_TIME = Histogram(
    "kolejka_run_seconds",
    "From a task's start (its node said it runs) to its accepted result",
    buckets=_SPANS,
    registry=None,
)
CLAIM_TIME = Histogram(
    "kolejka_claim_seconds",
    "The database's decision of one claim (a long-poll's waits left out)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=None,
)
RESULTS = Counter("kolejka_results", "Results accepted, by verdict", ["status"], registry=None)
POLLS = Gauge(
    "kolejka_polls",
    "Long-polls now: waiting on the event loop, or checking in one of the threads",
    ["doing"],
    multiprocess_mode="livesum",
    registry=None,
)
_OWN = (QUEUE_WAIT, RUN_TIME, CLAIM_TIME, RESULTS, POLLS)


class _Database(Collector):
    """The grid's state as the database holds it now."""

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily("kolejka_tasks", "Tasks by state", labels=["state"])
        counts = dict(
            Task.objects.values("state").annotate(n=Count("id")).values_list("state", "n")
        )
        for state in State:
            tasks.add_metric([str(state)], counts.get(str(state), 0))
        yield tasks
        family = GaugeMetricFamily(
            "kolejka_nodes", "Registered nodes: up, draining, unhealthy or down", labels=["state"]
        )
        states = {"up": 0, "draining": 0, "unhealthy": 0, "down": 0}
        now = timezone.now()
        for node in Node.objects.only("draining", "problems", "last_seen"):
            states[nodes.state(node, now)] += 1  # as the node list shows it
        for name, count in states.items():
            family.add_metric([name], count)
        yield family
        store = Blob.objects.aggregate(blobs=Count("reference"), size=Sum("size"))
        yield GaugeMetricFamily("kolejka_blobs", "Blobs stored", value=store["blobs"])
        yield GaugeMetricFamily(
            "kolejka_blob_store_bytes", "Bytes in the blob store", value=store["size"] or 0
        )


def exposition() -> bytes:
    """The text a scrape reads: the database's figures and every process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Database())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in _OWN:
            registry.register(metric)
    return generate_latest(registry)
