"""Docker images on the node: present, pulled, or loaded from a tarball the server stores.

The foreman keeps the images it brought in within a disk budget, least recently used first. It
never removes an image it did not bring (the operator's), nor one a running task uses.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import docker.errors

from kolejka.common import KolejkaError
from kolejka.common.jsonfile import write_json

log = logging.getLogger(__name__)

FetchTarball = Callable[[str], Path | None]


class ImageUnavailableError(KolejkaError):
    """The task's image is not on this node and could be neither pulled nor loaded."""


class ImageCache:
    """Makes images present on demand and trims the ones it brought in. Thread-safe."""

    def __init__(
        self,
        client: docker.DockerClient,
        state_file: Path,
        budget: int,
        fetch_tarball: FetchTarball | None = None,
    ) -> None:
        self.client = client
        self.state_file = state_file
        self.budget = budget
        self.fetch_tarball = fetch_tarball
        self._lock = threading.Lock()
        self._pulling: dict[str, threading.Lock] = {}
        try:
            self._owned: dict[str, float] = json.loads(state_file.read_text())
        except FileNotFoundError:
            self._owned = {}

    def _save(self) -> None:
        write_json(self.state_file, self._owned)

    def _touch(self, name: str, *, brought: bool) -> None:
        with self._lock:
            if brought or name in self._owned:
                self._owned[name] = time.time()
                self._save()

    def ensure(self, name: str, max_size: int | None = None) -> dict[str, Any]:
        """Make image `name` present: as is, pulled, or loaded from the server's tarball; return
        its inspect document (the task's worker takes it rather than inspecting it again).

        Raises `ImageUnavailableError` saying what was tried, also when the image is larger than
        `max_size` (the task's ``image`` limit).
        """
        with self._lock:
            pulling = self._pulling.setdefault(name, threading.Lock())
        with pulling:  # one pull per image at a time; the others wait and then find it
            found = self._inspect(name)
            if found is not None:
                self._touch(name, brought=False)
            else:
                found = self._bring(name)
        size = int(found.get("Size") or 0)
        if max_size is not None and size > max_size:
            raise ImageUnavailableError(
                f"image {name} is {size} bytes, more than the task's image limit of {max_size}"
            )
        return found

    def _inspect(self, name: str) -> dict[str, Any] | None:
        try:
            attrs: dict[str, Any] = self.client.images.get(name).attrs
        except docker.errors.ImageNotFound:
            return None
        return attrs

    def _size(self, name: str) -> int:
        size: Any = self.client.images.get(name).attrs.get("Size", 0)
        return int(size)

    def _bring(self, name: str) -> dict[str, Any]:
        try:
            attrs: dict[str, Any] = self.client.images.pull(name).attrs
        except docker.errors.APIError as error:
            pull_error = str(error.explanation or error)
            log.info("pulling %s failed: %s", name, pull_error)
        else:
            self._touch(name, brought=True)
            return attrs
        tarball = self.fetch_tarball(name) if self.fetch_tarball else None
        if tarball is None:
            raise ImageUnavailableError(
                f"image {name} is not on this node, pulling it failed ({pull_error}),"
                " and the server stores no tarball for it"
            )
        with open(tarball, "rb") as handle:
            self.client.images.load(handle)
        found = self._inspect(name)
        if found is None:
            raise ImageUnavailableError(f"the server's tarball for {name} does not hold that image")
        self._touch(name, brought=True)
        return found

    def trim(self, in_use: Collection[str] = ()) -> list[str]:
        """Remove least recently used images this cache brought in until they fit the budget.

        Returns the names removed. Images in `in_use` stay, as does any docker refuses to remove.
        """
        with self._lock:
            owned = sorted(self._owned.items(), key=lambda item: item[1])
        sizes = {}
        for name, _ in owned:
            try:
                sizes[name] = self._size(name)
            except docker.errors.ImageNotFound:
                sizes[name] = 0
        total = sum(sizes.values())
        removed = []
        for name, _ in owned:
            if total <= self.budget:
                break
            if name in in_use:
                continue
            try:
                self.client.images.remove(name)
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as error:
                log.warning("cannot remove image %s: %s", name, error.explanation or error)
                continue
            total -= sizes[name]
            removed.append(name)
            with self._lock:
                self._owned.pop(name, None)
                self._save()
        return removed
