"""The HTTP layer: one `requests.Session`, token authentication, retries, error translation.

A request is repeated after a connection error or a 5xx answer only when repeating it cannot do
harm: `safe` requests (reads, PUTs, content-addressed uploads, and actions the server refuses
to do twice) are retried on any connection error and on 500, 502, 503, 504 and 429; other
requests (a task submission, a claim) only when they surely never reached the server (the
connection could not be opened) or when it answered 503 or 429, which mean it did not act.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import requests
import urllib3.exceptions

from kolejka import __version__

from .errors import ApiError, AuthenticationFailed, ConfigError, ConnectionFailed, api_error

API_PREFIX = "/api/v1/"
RETRY_ALWAYS = frozenset({429, 503})
RETRY_IF_SAFE = frozenset({500, 502, 504}) | RETRY_ALWAYS
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# Longest pause between tries, also when the server asks for a longer one in Retry-After.
MAX_PAUSE = 30.0
# Every answer of the server says its longest long-poll wait in this header.
MAX_WAIT_HEADER = "Kolejka-Max-Wait"
# What a long-poll asks for "as long as you allow" before the server has said its maximum.
UNBOUNDED = 3600.0

Body = bytes | IO[bytes] | Iterable[bytes] | None


class Transport:
    """Talks to one server: `request` returns a successful `requests.Response` or raises.

    `retries` is how many times a failed request is repeated, pausing ``backoff * 2**n``
    seconds (with jitter, at most `max_backoff`) before the n-th repeat.
    """

    def __init__(
        self,
        server: str,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"kolejka-client/{__version__}"
        self.token: str | None = None
        # The server's longest long-poll wait, as its last answer said (`None`: not heard yet).
        self.max_wait: float | None = None
        # Called to get a fresh token when there is none or the server refused it (401).
        self.authenticate: Callable[[], str] | None = None

    def url(self, path: str) -> str:
        """The absolute URL of API `path` (``tasks/`` → ``<server>/api/v1/tasks/``)."""
        return f"{self.server}{API_PREFIX}{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        body: Callable[[], Body] | None = None,
        headers: Mapping[str, str] | None = None,
        safe: bool | None = None,
        stream: bool = False,
        timeout: float = READ_TIMEOUT,
        auth: bool = True,
    ) -> requests.Response:
        """Send a request and return the answer if it is a success (2xx), else raise.

        `body` makes the request body afresh for each try (a file is reopened). `safe` says
        whether repeating the request is harmless; by default GET, HEAD, PUT and DELETE are.
        Raises `ConnectionFailed`, an `ApiError` subclass for an error answer, `ConfigError`
        for a server URL that is not one.
        """
        if safe is None:
            safe = method in ("GET", "HEAD", "PUT", "DELETE")
        renewed = False
        attempt = 0
        while True:
            if auth and self.token is None and self.authenticate is not None:
                self.token = self.authenticate()
                renewed = True
            all_headers = dict(headers or {})
            if auth and self.token is not None:
                all_headers["Authorization"] = f"Token {self.token}"
            data = body() if body is not None else None
            try:
                response = self.session.request(
                    method,
                    self.url(path),
                    json=json,
                    params=params,
                    data=data,
                    headers=all_headers,
                    stream=stream,
                    timeout=(CONNECT_TIMEOUT, timeout),
                )
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as error:
                raise ConfigError(f"server: {self.server!r} is not a valid URL: {error}") from None
            except requests.exceptions.SSLError as error:
                raise ConnectionFailed(f"TLS with {self.server} failed: {error}") from error
            except requests.exceptions.RequestException as error:
                if attempt < self.retries and (safe or _never_sent(error)):
                    self._pause(attempt, None)
                    attempt += 1
                    continue
                tries = f" (tried {attempt + 1} times)" if attempt else ""
                raise ConnectionFailed(
                    f"cannot reach the kolejka server at {self.server}: {_reason(error)}{tries}; "
                    "check the server URL (--server, KOLEJKA_SERVER) and that it is up"
                ) from error
            finally:
                close = getattr(data, "close", None)
                if callable(close):
                    close()
            self._note_limits(response)
            status = response.status_code
            if status < 400:
                return response
            retryable = RETRY_IF_SAFE if safe else RETRY_ALWAYS
            if status in retryable and attempt < self.retries:
                response.close()
                self._pause(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            refusal = self._error(method, path, response)
            if (
                auth
                and isinstance(refusal, AuthenticationFailed)
                and self.authenticate
                and not renewed
            ):
                self.token = None
                continue
            raise refusal

    def long_poll(self, wanted: float | None) -> float:
        """The wait to ask a long-poll for: `wanted` seconds (`None`: as long as the server
        allows), cut to the server's maximum once an answer has said it. The server cuts a
        longer wait itself, so asking too much only costs a longer read timeout."""
        asked = UNBOUNDED if wanted is None else max(0.0, wanted)
        return min(asked, self.max_wait) if self.max_wait is not None else asked

    def _note_limits(self, response: requests.Response) -> None:
        given = response.headers.get(MAX_WAIT_HEADER)
        if given is None:
            return
        try:
            value = float(given)
        except ValueError:
            return
        if value >= 0 and value == value and value != float("inf"):
            self.max_wait = value

    def json(self, method: str, path: str, **options: Any) -> Any:
        """`request`, then the answer's JSON document (`None` for an empty answer)."""
        response = self.request(method, path, **options)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ConfigError(
                f"{method} {self.url(path)} answered something that is not JSON; "
                f"is {self.server} a kolejka server?"
            ) from None

    def _error(self, method: str, path: str, response: requests.Response) -> ApiError:
        try:
            document = response.json()
        except ValueError:
            document = None
        finally:
            response.close()
        if not isinstance(document, dict) or "code" not in document:
            reason = f"{response.status_code} {response.reason or ''}".strip()
            document = {
                "detail": f"{method} {self.url(path)} answered HTTP {reason}, not a kolejka "
                f"error; is {self.server} the kolejka server's URL?"
            }
        return api_error(response.status_code, document, response.reason or "")

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        pause = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
        # Retry-After may also be an HTTP date; then we keep our own pause.
        if retry_after is not None and retry_after.strip().isdigit():
            pause = max(pause, min(MAX_PAUSE, float(retry_after)))
        time.sleep(pause)


def _never_sent(error: requests.exceptions.RequestException) -> bool:
    """Whether `error` happened before any byte of the request left: then it is safe to repeat."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _reason(error: requests.exceptions.RequestException) -> str:
    """The innermost cause of a connection failure, in one line."""
    cause: BaseException = error
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(reason, BaseException):
        cause = reason
    text = str(cause)
    # urllib3 writes "<Connection object at 0x...>: Failed to establish ...: [Errno 111] ...".
    if "Errno" in text:
        text = "[Errno" + text.split("[Errno", 1)[1]
    return text.rstrip(")").strip() or type(cause).__name__
