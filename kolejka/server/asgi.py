"""The ASGI application for production servers (``kolejka-server serve`` runs it in gunicorn's
uvicorn workers): the long-polls wait on the event loop (grid/views/waiting.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kolejka.server.settings")
application = get_asgi_application()

from kolejka.server.grid import deliver, wakeup  # noqa: E402  (Django is set up only now)

deliver.serving()
# Listening from the start: a wake-up from another process before the first poll is not lost.
wakeup.hub.listen()
