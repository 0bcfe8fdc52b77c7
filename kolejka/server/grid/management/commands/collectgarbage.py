from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from kolejka.common import SpecError
from kolejka.common.units import parse_time

from ...blobs import collect_garbage


class Command(BaseCommand):
    help = (
        "Delete blobs no task, result or image references and nobody used within the grace "
        "period (KOLEJKA_BLOB_GRACE), and temp files of dead uploads. Safe while serving."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--grace", help="override KOLEJKA_BLOB_GRACE, e.g. 1H or 0")
        parser.add_argument("--dry-run", action="store_true", help="only list what would go")
        parser.add_argument("--json", action="store_true", help="print the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        grace = settings.BLOB_GRACE
        if options["grace"] is not None:
            try:
                grace = parse_time(options["grace"], "--grace")
            except SpecError as error:
                self.stderr.write(str(error))
                raise SystemExit(2) from None
        collected = collect_garbage(timezone.now(), grace, dry_run=options["dry_run"])
        figures = {
            "blobs": len(collected),
            "bytes": sum(blob.size for blob in collected),
            "dry_run": bool(options["dry_run"]),
        }
        if options["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            verb = "would delete" if options["dry_run"] else "deleted"
            self.stdout.write(f"{verb} {figures['blobs']} blobs, {figures['bytes']} bytes")
