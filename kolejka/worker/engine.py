"""The docker engine: one shared client per engine URL, and getting the task's image.

The docker SDK is imported on first use only (it costs ~0.18 s here): a worker asked to run an
invalid task refuses it without paying for it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kolejka.common import KolejkaError
from kolejka.common.units import format_memory

from .config import PullPolicy

if TYPE_CHECKING:
    import docker

_clients: dict[str, docker.APIClient] = {}
_clients_lock = threading.Lock()


class ImageUnavailable(KolejkaError):
    """The task's image is not on this node and could not be pulled, or is too large."""


class EngineUnavailable(KolejkaError):
    """The docker engine does not answer."""


def client(url: str) -> docker.APIClient:
    """The low-level client for the engine at `url`, made once and shared by all threads (the
    SDK's connection pool is thread-safe; it is sized for many tasks at once). Raise
    `EngineUnavailable` if the engine does not answer."""
    with _clients_lock:
        api = _clients.get(url)
        if api is None:
            import docker

            try:
                api = docker.APIClient(base_url=url, version="auto", timeout=60, max_pool_size=64)
            except docker.errors.DockerException as error:
                message = f"cannot reach the docker engine at {url}: {error}"
                raise EngineUnavailable(message) from None
            _clients[url] = api
        return api


def image_config(
    api: docker.APIClient,
    image: str,
    policy: PullPolicy,
    max_size: int | None,
    known: Mapping[str, Any] | None = None,
) -> Any:
    """The image's inspect document, pulling the image as `policy` says; `known`: the document
    as the caller has just taken it, used as is unless `policy` says to pull always.

    Raise `ImageUnavailable` saying which image is missing and why it could not be pulled, or
    that it is larger than `max_size`.
    """
    from docker.errors import APIError, ImageNotFound

    found: Any = known
    if found is None or policy is PullPolicy.ALWAYS:
        try:
            found = api.inspect_image(image)
        except ImageNotFound:
            found = None
    if policy is PullPolicy.ALWAYS or (found is None and policy is PullPolicy.MISSING):
        try:
            _pull(api, image)
            found = api.inspect_image(image)
        except (APIError, OSError, ImageUnavailable) as error:
            if found is None:
                reason = getattr(error, "explanation", None) or str(error)
                raise ImageUnavailable(
                    f"image {image} is not on this node and pulling it failed: {reason}"
                ) from error
    if found is None:
        raise ImageUnavailable(f"image {image} is not on this node and the pull policy is never")
    size = int(found.get("Size") or 0)
    if max_size is not None and size > max_size:
        raise ImageUnavailable(
            f"image {image} is {format_memory(size)}, larger than limits.image "
            f"{format_memory(max_size)}"
        )
    return found


def _pull(api: docker.APIClient, image: str) -> None:
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(image)
    for message in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
        if "error" in message:
            raise ImageUnavailable(str(message["error"]))
