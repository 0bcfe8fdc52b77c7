"""Sending the deliveries `notify` queued: claimed by one process at a time, sent, retried with
exponential backoff, given up after ``KOLEJKA_NOTIFY_ATTEMPTS``.

Any server process may send (`kick`: a thread per process, woken when a task ends and by the
housekeeping of claims and heartbeats), and so may ``kolejka-server deliver``. A claim moves a
due delivery's `next_try` on by `LEASE` in one transaction: the process that dies during the
attempt leaves it to be tried again then, so a receiver may see a delivery twice and dedupes it
by its ``X-Kolejka-Delivery`` id. A webhook is POSTed to the address its host was checked at
(`targets`), signed (`sign`), without following redirects; only a 2xx answer delivers it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from . import targets
from .models import Channel, Delivery, WebhookSecret, new_webhook_secret

log = logging.getLogger(__name__)
# Deliveries claimed per transaction: one, so that a claim's lease covers one attempt (a
# process sending a row of them one after another would outlast the lease of the last).
CLAIM = 1
DIED = "given up: its last attempt never ended (the process sending it died)"


def lease() -> timedelta:
    """How long a claimed attempt may take before another process may try it again: its
    connection, the request's writes and the answer's reads each wait at most the timeout."""
    return timedelta(seconds=4 * settings.NOTIFY_TIMEOUT + 30)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the delay doubled for each before it."""
    delay = settings.NOTIFY_RETRY_DELAY * 2 ** min(attempts - 1, 40)
    return timedelta(seconds=min(delay, settings.NOTIFY_RETRY_DELAY_MAX))


def sign(secret: str, body: bytes) -> str:
    """The ``X-Kolejka-Signature`` of `body`: ``sha256=`` and the HMAC-SHA256 of its exact bytes
    under the owner's webhook secret, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def secret_of(user_id: int) -> WebhookSecret:
    """The webhook secret of the user `user_id`, made on first use."""
    found, _ = WebhookSecret.objects.get_or_create(user_id=user_id)
    return found


def rotate(user_id: int) -> WebhookSecret:
    """A new webhook secret for the user `user_id`: what is sent from now on is signed with it."""
    found, _ = WebhookSecret.objects.get_or_create(user_id=user_id)
    found.secret = new_webhook_secret()
    found.save()
    return found


def claim(now: datetime, limit: int = CLAIM) -> list[Delivery]:
    """Up to `limit` deliveries due at `now`, each with one more attempt counted and its
    `next_try` moved on by `lease`, in one transaction. A delivery out of attempts that is due
    again had its last attempt die with its process: it is given up instead."""
    with transaction.atomic():
        Delivery.objects.filter(next_try__lte=now, attempts__gte=settings.NOTIFY_ATTEMPTS).update(
            next_try=None, gave_up=True, last_error=DIED
        )
        due = Delivery.objects.filter(next_try__lte=now).order_by("next_try")
        if connection.vendor == "postgresql":
            # Loser of a race with another claim: it skips the rows the winner locked, and once
            # the winner commits they are no longer due.
            due = due.select_for_update(skip_locked=True)
        # On SQLite the immediate transaction holds the write lock: the loser waits for it and
        # then finds the winner's rows no longer due.
        found = list(due[:limit])
        Delivery.objects.filter(id__in=[row.id for row in found]).update(
            attempts=F("attempts") + 1, next_try=now + lease()
        )
    for row in found:
        row.attempts += 1
    return found


def attempt(delivery: Delivery) -> bool:
    """Send the claimed `delivery` once and record how it went; whether it was delivered."""
    try:
        status, error = (_mail if delivery.channel == Channel.EMAIL else _post)(delivery)
    except Exception as unexpected:
        # A bug of ours, not the receiver's: in the log with its traceback, and in the
        # delivery's, which goes on as after any failed attempt.
        log.exception("delivery %s to %s failed", delivery.id, delivery.target)
        status, error = None, f"internal error: {type(unexpected).__name__}: {unexpected}"[:1000]
    ok = error is None
    now = timezone.now()
    if ok:
        fields: dict[str, object] = {"delivered": now, "next_try": None}
    elif delivery.attempts >= settings.NOTIFY_ATTEMPTS:
        fields = {"gave_up": True, "next_try": None}
        log.warning("delivery %s to %s given up: %s", delivery.id, delivery.target, error)
    else:
        fields = {"next_try": now + backoff(delivery.attempts)}
    # Loser of a race with a process that took the attempt over after its lease ran out (this
    # one was that slow): the attempts moved on, this records nothing.
    Delivery.objects.filter(id=delivery.id, attempts=delivery.attempts).update(
        tried=now, last_status=status, last_error=error, **fields
    )
    return ok


def deliver_due() -> int:
    """Claim and attempt deliveries until none is due; return how many attempts were made."""
    made = 0
    while found := claim(timezone.now()):
        for delivery in found:
            attempt(delivery)
        made += len(found)
    return made


def _post(delivery: Delivery) -> tuple[int | None, str | None]:
    """POST the webhook; (its status, None) when it answered 2xx, else (status or None, why)."""
    try:
        target = targets.resolve(delivery.target)
    except targets.Refused as error:
        return None, f"refused: {error}"
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "kolejka-server",
        "X-Kolejka-Delivery": str(delivery.id),
        "X-Kolejka-Event": delivery.event,
        "X-Kolejka-Timestamp": str(int(timezone.now().timestamp())),
        "X-Kolejka-Signature": sign(secret_of(delivery.owner_id).secret, body),
    }
    kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    sender = kind(target.host, target.port, timeout=settings.NOTIFY_TIMEOUT)

    def pinned(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        # The address checked, not a second lookup of the name (TLS still checks the name).
        return socket.create_connection((target.address, target.port), settings.NOTIFY_TIMEOUT)

    sender._create_connection = pinned  # type: ignore[attr-defined]
    try:
        sender.request("POST", target.path, body=body, headers=headers)
        answer = sender.getresponse()
        answer.read(65536)
    except (OSError, http.client.HTTPException) as error:
        return None, f"{type(error).__name__}: {error}"[:1000]
    finally:
        sender.close()
    if 200 <= answer.status < 300:
        return answer.status, None
    if 300 <= answer.status < 400:
        where = answer.getheader("Location", "")
        return answer.status, f"answered {answer.status} to {where}; redirects are not followed"
    return answer.status, f"answered {answer.status} {answer.reason}"


def _mail(delivery: Delivery) -> tuple[int | None, str | None]:
    message = json.loads(delivery.body)
    mail = EmailMessage(
        message["subject"],
        message["text"],
        to=[delivery.target],
        headers={"X-Kolejka-Delivery": str(delivery.id)},
    )
    try:
        mail.send()
    except (smtplib.SMTPException, OSError) as error:
        return None, f"{type(error).__name__}: {error}"[:1000]
    return None, None


_state = threading.Lock()
_thread: threading.Thread | None = None
_wanted = False
_serving = False


def serving() -> None:
    """Mark this process as one that serves requests, whose own thread may deliver (`kick`).
    Another (a management command) exits when its work is done, perhaps during an attempt:
    what it queues waits for a server's thread or ``kolejka-server deliver``."""
    global _serving
    _serving = True


def kick() -> None:
    """Have this process's delivery thread attempt what is due (started if it is not running),
    in a server process (`serving`) unless ``KOLEJKA_DELIVER_IN_SERVER`` is false."""
    global _thread, _wanted
    if not settings.DELIVER_IN_SERVER or not _serving:
        return
    with _state:
        _wanted = True
        if _thread is not None:
            return
        _thread = threading.Thread(target=_drain, name="kolejka-deliver", daemon=True)
        _thread.start()


def _drain() -> None:
    global _thread, _wanted
    try:
        while True:
            with _state:
                if not _wanted:
                    _thread = None
                    return
                _wanted = False
            try:
                close_old_connections()
                deliver_due()
            except Exception:
                # The next kick (a task's end, the next claim's housekeeping) tries again.
                log.exception("delivering notifications failed")
    finally:
        with _state:
            _thread = None
        connections.close_all()
