"""The ASGI application for production servers (``kolejka-server serve`` runs it in gunicorn's
uvicorn workers): the long-polls wait on the event loop (grid/views/waiting.py)."""

import json
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kolejka.server.settings")
django = get_asgi_application()

# Django is set up only now.
from django.conf import settings  # noqa: E402

from kolejka.server.grid import blobstore, deliver, wakeup  # noqa: E402
from kolejka.server.grid.errors import TooLarge, error_body  # noqa: E402


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django, except that a body announced larger than any the server takes (a blob's
    ``KOLEJKA_BLOB_MAX_SIZE``) is refused before it is read: Django's ASGI handler reads a whole
    body before any view sees it."""
    if scope["type"] == "http":
        length = dict(scope["headers"]).get(b"content-length", b"")
        try:
            blobstore.refuse_oversize(
                int(length) if length.isdigit() else None, settings.BLOB_MAX_SIZE
            )
        except TooLarge as error:
            body = json.dumps(error_body(error)).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
    await django(scope, receive, send)


deliver.serving()
# Listening from the start: a wake-up from another process before the first poll is not lost.
wakeup.hub.listen()
