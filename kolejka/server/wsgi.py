"""The WSGI application for production servers (``kolejka-server serve`` runs it in gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kolejka.server.settings")
application = get_wsgi_application()

from kolejka.server.grid import deliver  # noqa: E402  (Django is set up only now)

deliver.serving()
