from __future__ import annotations

from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ...schedules import run_due


class Command(BaseCommand):
    help = (
        "Queue the runs of the schedules due now (or at --now). Claims and heartbeats do this "
        "by themselves; this is for a grid with no foreman calling, and to replay a moment."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--now", help="the moment to run them at, ISO 8601 (default: now)")
        parser.add_argument("--json", action="store_true", help='print {"queued": N}')

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["now"]:
            try:
                now = datetime.fromisoformat(options["now"])
            except ValueError:
                raise CommandError(f"--now: not an ISO 8601 time: {options['now']!r}") from None
            if now.tzinfo is None:
                raise CommandError("--now: give the time zone too (e.g. 2026-12-01T10:00Z)")
        total = run_due(now, limit=None)
        self.stdout.write(f'{{"queued": {total}}}' if options["json"] else f"queued {total}")
