"""Progress reports: what the therapist asked for, and the PDF once Celery has made it."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from patients.models import Patient


class ProgressReport(models.Model):
    """A PDF progress report of one patient over a period. The PDF is kept in the database
    (a few hundred kB), so that web and Celery containers need no shared volume, and backups of
    the database hold the reports that were filed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Being made"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="reports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    first_day = models.DateField()
    last_day = models.DateField()
    assessment = models.TextField(blank=True, help_text="The therapist's assessment")
    plan = models.TextField(blank=True, help_text="The plan from here")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=300, blank=True)
    pdf = models.BinaryField(null=True, blank=True, editable=False)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    pages = models.PositiveSmallIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(last_day__gte=F("first_day")), name="report_period_ordered"
            )
        ]

    def __str__(self) -> str:
        return f"Progress report {self.patient} {self.first_day}–{self.last_day}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)

    @property
    def file_name(self) -> str:
        """ASCII only, no user text: safe in a Content-Disposition header on every browser."""
        return (
            f"progress-report-{self.first_day:%Y%m%d}-{self.last_day:%Y%m%d}-{str(self.pk)[:8]}.pdf"
        )
