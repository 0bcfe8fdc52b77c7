from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from ...leases import reap


class Command(BaseCommand):
    help = (
        "End expired leases now: their tasks go back to the queue or, out of attempts, fail. "
        "Claims and heartbeats do this by themselves; this is for a grid with no foreman calling."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help='print {"reaped": N}')

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        while reaped := reap(timezone.now()):
            total += reaped
        self.stdout.write(f'{{"reaped": {total}}}' if options["json"] else f"reaped {total}")
