"""Make a patient's PDF progress report from the command line (what the Celery task does)."""

import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from patients.models import Patient
from reports.pdf import render_report
from web.figures import ChartExportError


class Command(BaseCommand):
    help = "Write a patient's PDF progress report for the last N days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("patient_id", type=UUID, help="The patient's UUID")
        parser.add_argument("--days", type=int, default=settings.REPORT_DEFAULT_DAYS)
        parser.add_argument("--out", type=Path, required=True, help="Where to write the PDF")
        parser.add_argument("--assessment", default="", help="The therapist's assessment")
        parser.add_argument("--plan", default="", help="The plan from here")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if not 1 <= days <= 732:
            raise CommandError("--days must be between 1 and 732.")
        patient = (
            Patient.objects.select_related("user", "therapist__user")
            .filter(pk=options["patient_id"])
            .first()
        )
        if patient is None:
            raise CommandError(f"No patient with id {options['patient_id']}.")
        last = timezone.localdate()
        first = last - datetime.timedelta(days=days - 1)
        try:
            report = render_report(
                patient=patient,
                first=first,
                last=last,
                assessment=options["assessment"],
                plan=options["plan"],
            )
        except ChartExportError as error:
            raise CommandError(str(error)) from error
        out: Path = options["out"]
        try:
            out.write_bytes(report.pdf)
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error.strerror}") from error
        self.stdout.write(
            f"Wrote {out} ({report.pages} pages, {len(report.pdf) // 1024} kB) for "
            f"{patient.full_name}, {first:%d %b %Y} – {last:%d %b %Y}; sha256 {report.sha256}"
        )
