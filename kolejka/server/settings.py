"""The server's settings: one flat module read from the environment, no settings file to write.

Every value comes from a ``KOLEJKA_*`` variable (or ``DATABASE_URL``) through a typed helper
that refuses a bad value with a message naming the variable, so a typo stops the server at
start-up instead of silently falling back to a default. With nothing set, the server runs on
SQLite (WAL) and a local blob store in ``KOLEJKA_DATA``. Importing this module reads the
environment and files, and writes nothing: the data folder's secret key is made by ``migrate``
and ``serve`` (`secret.ensure_key`). ``docs/operations.md`` lists every variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from kolejka.common.errors import SpecError
from kolejka.common.states import TaskState
from kolejka.common.units import parse_bool, parse_memory, parse_time

from .secret import secret_key

# Django's generic classes (ModelAdmin, ...) take type arguments at run time, as in their stubs.
django_stubs_ext.monkeypatch()


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return parse_bool(value, name)
    except SpecError as error:
        raise ImproperlyConfigured(str(error)) from None


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number (got {value!r})") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum} (got {value!r})")
    return number


def env_size(name: str, default: str) -> int:
    """A size in bytes, written as in the task format (``4G``, ``512M``)."""
    try:
        return parse_memory(os.environ.get(name) or default, name, minimum=1)
    except SpecError as error:
        raise ImproperlyConfigured(str(error)) from None


def env_seconds(name: str, default: str, *, zero: bool = False) -> float:
    """A duration in seconds, written as in the task format (``60s``, ``5min``); greater than
    zero unless `zero` allows it."""
    try:
        return parse_time(os.environ.get(name) or default, name, positive=not zero)
    except SpecError as error:
        raise ImproperlyConfigured(str(error)) from None


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


def env_targets(
    name: str,
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], frozenset[str]]:
    """A list of networks (``10.0.0.0/8``, ``127.0.0.1``) and host names (``hooks.internal``)."""
    networks, hosts = [], set()
    for item in env_list(name, ""):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            if not _HOST.match(item):
                raise ImproperlyConfigured(
                    f"{name}: {item!r} is not an address, a network (10.0.0.0/8) or a host name"
                ) from None
            hosts.add(item.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


def database_from_url(url: str, data: Path) -> dict[str, object]:
    """Django's database settings for ``DATABASE_URL`` (``postgres://...`` or ``sqlite:///path``)."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "kolejka",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # A pool, so that long-polls hand their connection back while they sleep.
            "OPTIONS": {"pool": {"min_size": 1, "max_size": DB_POOL_SIZE, "timeout": DB_WAIT}}
            | options,
        }
    if parts.scheme == "sqlite":
        path = unquote(parts.path) if parts.path not in ("", "/") else str(data / "kolejka.db")
        return sqlite_database(Path(path))
    raise ImproperlyConfigured(
        f"DATABASE_URL must start with postgres:// or sqlite:/// (got {parts.scheme!r}://...)"
    )


def sqlite_database(path: Path) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Each server thread keeps its connection: opening one costs more than most requests.
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            # Every transaction takes the write lock when it begins: two claims never interleave,
            # and a writer waits (up to `timeout`) instead of failing with "database is locked"
            # halfway through a read-then-write.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            " PRAGMA foreign_keys=ON;",
        },
    }


def default_data() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "kolejka-server"


DATA = Path(env_str("KOLEJKA_DATA", str(default_data()))).absolute()
# Where blob contents live: `disk` (BLOB_ROOT, which several servers may share on a network
# filesystem) or `s3` (a bucket every server reaches). See grid/blobstore.py.
BLOB_STORE = env_choice("KOLEJKA_BLOB_STORE", "disk", ("disk", "s3"))
BLOB_ROOT = Path(env_str("KOLEJKA_BLOB_ROOT", str(DATA / "blobs"))).absolute()
S3_BUCKET = env_str("KOLEJKA_S3_BUCKET", "")
S3_ENDPOINT = env_str("KOLEJKA_S3_ENDPOINT", "")
S3_PREFIX = env_str("KOLEJKA_S3_PREFIX", "").strip("/")
S3_PREFIX += "/" if S3_PREFIX else ""
if BLOB_STORE == "s3" and not S3_BUCKET:
    raise ImproperlyConfigured("KOLEJKA_BLOB_STORE=s3 needs KOLEJKA_S3_BUCKET, the bucket's name")
# PostgreSQL connections: each worker process of `serve` has a pool and one listener for
# wake-ups (grid/wakeup.py), so a server opens WORKERS x (pool + 1). Either its budget is given
# (KOLEJKA_DB_CONNECTIONS, split across its workers) or each worker's pool (KOLEJKA_DB_POOL_SIZE);
# the default budget lets three servers share a PostgreSQL of the default max_connections (100).
WORKERS = env_int("KOLEJKA_WORKERS", 2, minimum=1)
DB_CONNECTIONS_DEFAULT = 30


def db_pool_size(workers: int) -> int:
    """Each worker's pool for a server of `workers` processes; refuses a budget too small."""
    if os.environ.get("KOLEJKA_DB_POOL_SIZE"):
        if os.environ.get("KOLEJKA_DB_CONNECTIONS"):
            raise ImproperlyConfigured(
                "set KOLEJKA_DB_CONNECTIONS (the server's budget) or KOLEJKA_DB_POOL_SIZE "
                "(each worker's pool), not both"
            )
        return env_int("KOLEJKA_DB_POOL_SIZE", 16, minimum=2)
    budget = env_int("KOLEJKA_DB_CONNECTIONS", DB_CONNECTIONS_DEFAULT, minimum=1)
    if budget // workers - 1 < 2:
        raise ImproperlyConfigured(
            f"KOLEJKA_DB_CONNECTIONS={budget} is too few for {workers} workers: each needs a "
            f"pool of at least 2 and a listener, {3 * workers} in all"
        )
    return budget // workers - 1


DB_POOL_SIZE = db_pool_size(WORKERS)
# How long a request waits for a PostgreSQL connection before it answers 503 (Retry-After).
DB_WAIT = env_seconds("KOLEJKA_DB_WAIT", "30s")

SECRET_KEY, SECRET_KEY_SOURCE = secret_key(DATA)
DEBUG = env_bool("KOLEJKA_DEBUG", False)
ALLOWED_HOSTS = env_list("KOLEJKA_ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = env_list("KOLEJKA_CSRF_TRUSTED_ORIGINS", "")

# Behind TLS (directly or through a proxy that sets X-Forwarded-Proto), turn on every
# HTTPS-only protection that `check --deploy` asks for.
HTTPS = env_bool("KOLEJKA_HTTPS", False)
if env_bool("KOLEJKA_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("KOLEJKA_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"], DATA)}
else:
    DATABASES = {"default": sqlite_database(DATA / "kolejka.db")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_htmx",
    "kolejka.server.grid",
    "kolejka.server.board",
]
MIDDLEWARE = [
    "kolejka.server.grid.errors.KnownFaults",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "kolejka.server.urls"
WSGI_APPLICATION = "kolejka.server.wsgi.application"
AUTH_USER_MODEL = "kolejka.User"
# The web board signs in with a session (the API with tokens, the legacy API at /login/).
LOGIN_URL = "board:login"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"
# The admin's CSS comes straight from the installed packages: no collectstatic step.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

# JSON bodies (a batch of 1000 tasks) are read into memory, up to this size; blobs stream.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_size("KOLEJKA_JSON_MAX_SIZE", "32M")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["kolejka.server.grid.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "kolejka.server.grid.parsers.JsonAlways",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kolejka.server.grid.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "kolejka",
    "DESCRIPTION": "The kolejka server's HTTP API (see docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Operation ids are named from the path after it (`tasks_create`); the legacy API's paths,
    # at the root, keep theirs whole (`task_task_create`).
    "SCHEMA_PATH_PREFIX": "/api/v1/",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Tasks and batches both have a `state`: each set of choices its own name.
    "ENUM_NAME_OVERRIDES": {
        "TaskStateEnum": [str(state) for state in TaskState],
        "BatchStateEnum": ["open", "sealed"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "kolejka.server.grid.schema.add_error_responses",
    ],
}

# The grid's own knobs.
BLOB_MAX_SIZE = env_size("KOLEJKA_BLOB_MAX_SIZE", "4G")
USER_QUOTA = env_size("KOLEJKA_USER_QUOTA", "100G")
BLOB_GRACE = env_seconds("KOLEJKA_BLOB_GRACE", "1D")
LEASE_TTL = env_seconds("KOLEJKA_LEASE_TTL", "60s")
# A node kills its copy of a task at `expires - margin` unless it renewed the lease, and the
# server requeues the task only after `expires + margin`: two copies never run at once, even
# when the node froze (the observer kills it) or its clock runs a little apart.
# A twentieth of the lease by default: heartbeats that come as late as 0.9 of the lease still
# renew it before the node's own deadline.
LEASE_MARGIN = env_seconds("KOLEJKA_LEASE_MARGIN", f"{LEASE_TTL / 20}s")
if LEASE_MARGIN >= LEASE_TTL / 2:
    raise ImproperlyConfigured(
        f"KOLEJKA_LEASE_MARGIN ({LEASE_MARGIN:g} s) must be less than half of KOLEJKA_LEASE_TTL "
        f"({LEASE_TTL:g} s): a node kills its task at the lease's end less the margin"
    )
MAX_ATTEMPTS = env_int("KOLEJKA_MAX_ATTEMPTS", 3, minimum=1)
# After a failed attempt the task waits RETRY_DELAY (doubled for each attempt so far, at most
# RETRY_DELAY_MAX) before any node may take it, and RETRY_AVOID before the node that failed it.
RETRY_DELAY = env_seconds("KOLEJKA_RETRY_DELAY", "2s", zero=True)
RETRY_DELAY_MAX = env_seconds("KOLEJKA_RETRY_DELAY_MAX", "5min", zero=True)
RETRY_AVOID = env_seconds("KOLEJKA_RETRY_AVOID", "1min", zero=True)
# How long past its time limit a task may hold its node's cores (the worker's grace before it
# kills it, the result's upload): what reservations count on (grid/reservations.py).
OVERRUN = env_seconds("KOLEJKA_OVERRUN", "10s", zero=True)
MAX_WAIT = env_seconds("KOLEJKA_MAX_WAIT", "60s")
# A node that has not called in (claim, heartbeat, health report) for this long is shown down.
# A live foreman calls in once per claim (at most MAX_WAIT), heartbeats its leases within their
# TTL, and reports its health at each check while unhealthy.
NODE_DOWN_AFTER = env_seconds("KOLEJKA_NODE_DOWN_AFTER", f"{MAX_WAIT + LEASE_TTL}s")
if NODE_DOWN_AFTER <= MAX_WAIT:
    raise ImproperlyConfigured(
        f"KOLEJKA_NODE_DOWN_AFTER ({NODE_DOWN_AFTER:g} s) must be more than KOLEJKA_MAX_WAIT "
        f"({MAX_WAIT:g} s): a node waiting in a claim calls in only when the claim ends"
    )
# A periodic task's tick not run within this of its time was missed (the servers were down):
# its schedule's `missed` policy decides whether it runs (schedules.py).
SCHEDULE_GRACE = env_seconds("KOLEJKA_SCHEDULE_GRACE", "1min")
# How often a sleeping long-poll looks at the database even without a wake-up (a safety net
# for lost notifications and for leases that expire while nobody calls in).
POLL_INTERVAL = env_seconds("KOLEJKA_POLL_INTERVAL", "1s")
# Threads of each server process that run the long-polls' views (grid/views/waiting.py): how
# many of their checks run at once; a poll that finds none free within KOLEJKA_BUSY_WAIT is a 503.
POLL_THREADS = env_int("KOLEJKA_THREADS", max(1, DB_POOL_SIZE // 2), minimum=1)
BUSY_WAIT = env_seconds("KOLEJKA_BUSY_WAIT", "2s")
# How often an open board page asks whether what it shows changed (an unchanged answer is an
# empty 204, so an idle board costs a few queries a period).
BOARD_POLL = env_seconds("KOLEJKA_BOARD_POLL", "1s")

# The most of a running task's stdout and of its stderr the server keeps, per attempt, as its
# node streams them (grid/logs.py); past it a stream is cut and said to be. The worker's own cap
# (the foreman's --max-output, 16M) usually cuts it first.
LOG_MAX_SIZE = env_size("KOLEJKA_LOG_MAX_SIZE", "16M")
# Notifications (grid/notify.py) and callbacks: `false` where the server must not reach out
# (no webhook, e-mail or callback_url is taken then).
CALLBACKS = env_bool("KOLEJKA_CALLBACKS", True)
# Webhook targets beyond public addresses: networks and host names (grid/targets.py).
NOTIFY_ALLOW = env_targets("KOLEJKA_NOTIFY_ALLOW")
# One attempt's connect and each read wait at most this; no redirect is followed.
NOTIFY_TIMEOUT = env_seconds("KOLEJKA_NOTIFY_TIMEOUT", "10s")
# A delivery that failed waits RETRY_DELAY doubled per attempt so far (at most RETRY_DELAY_MAX);
# after NOTIFY_ATTEMPTS it is given up.
NOTIFY_ATTEMPTS = env_int("KOLEJKA_NOTIFY_ATTEMPTS", 8, minimum=1)
NOTIFY_RETRY_DELAY = env_seconds("KOLEJKA_NOTIFY_RETRY_DELAY", "30s")
NOTIFY_RETRY_DELAY_MAX = env_seconds("KOLEJKA_NOTIFY_RETRY_DELAY_MAX", "6h")
# Server processes deliver by themselves (a thread each, woken when a task ends and by the
# housekeeping of claims and heartbeats); `false` leaves it to ``kolejka-server deliver``.
DELIVER_IN_SERVER = env_bool("KOLEJKA_DELIVER_IN_SERVER", True)
# E-mail through Django's SMTP backend; with no host, e-mail targets are refused at submission.
EMAIL_HOST = env_str("KOLEJKA_EMAIL_HOST", "")
EMAIL_PORT = env_int("KOLEJKA_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("KOLEJKA_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("KOLEJKA_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("KOLEJKA_EMAIL_TLS", False)
EMAIL_USE_SSL = env_bool("KOLEJKA_EMAIL_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "KOLEJKA_EMAIL_TLS (STARTTLS) and KOLEJKA_EMAIL_SSL (TLS from the start): choose one"
    )
EMAIL_TIMEOUT = NOTIFY_TIMEOUT
DEFAULT_FROM_EMAIL = env_str("KOLEJKA_EMAIL_FROM", "kolejka@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": env_str("KOLEJKA_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
