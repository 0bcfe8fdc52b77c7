from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from ...deliver import deliver_due


class Command(BaseCommand):
    help = (
        "Send the notifications and callbacks that are due, retrying failed ones as they come "
        "due again, until stopped (SIGTERM or SIGINT: after the current round); --burst sends "
        "what is due now and exits. Server processes do this by themselves unless "
        "KOLEJKA_DELIVER_IN_SERVER=false."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--burst", action="store_true", help="send what is due now, then exit")
        parser.add_argument("--json", action="store_true", help='print {"attempts": N}')

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def finish(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, finish)
        signal.signal(signal.SIGINT, finish)
        total = deliver_due()
        while not options["burst"] and not stop.is_set():
            # Retries come due by the clock: look again each poll interval.
            stop.wait(settings.POLL_INTERVAL)
            total += deliver_due()
        self.stdout.write(f'{{"attempts": {total}}}' if options["json"] else f"attempts {total}")
