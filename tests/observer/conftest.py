"""The observer tests share the worker tests' per-run sandbox (cgroup base, images, temp dir)."""

from tests.worker.conftest import clean, observer, sandbox

__all__ = ["clean", "observer", "sandbox"]
