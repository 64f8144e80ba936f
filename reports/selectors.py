"""Reads of progress reports, scoped by the user (404 for anything not theirs)."""

from uuid import UUID

from patients.models import Patient
from patients.selectors import User, get_or_404, visible_to
from reports.models import ProgressReport


def report_get_for_user(*, user: User, report_id: UUID) -> ProgressReport:
    """A report is for the patient's therapist and the patient; the PDF bytes are not loaded."""
    queryset = ProgressReport.objects.defer("pdf").select_related("patient__user")
    return get_or_404(visible_to(queryset, user), report_id)


def reports_of_patient(*, patient: Patient) -> list[ProgressReport]:
    return list(ProgressReport.objects.defer("pdf").filter(patient=patient)[:20])
