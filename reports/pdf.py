"""The PDF progress report: progress data and its charts into an HTML template, then WeasyPrint.

The structure follows the usual outpatient progress note: clinic, patient and therapist, the
period, condition and side, goals and their status, objective measures against target and
normal, adherence, pain and effort, notable form warnings, assessment and plan, signature.
"""

import datetime
import hashlib
from dataclasses import dataclass
from statistics import mean

from django.template.loader import render_to_string
from django.utils import timezone

from analysis.charts import progress_figures
from analysis.progress import Measure, Progress, measure_of
from patients.models import Patient
from sessions.selectors import progress_of_patient
from web.figures import figure_svg

CHART_WIDTH_PX = 720  # A4 text width at 96 dpi is about 680 px; WeasyPrint scales to fit
FORM_WARNING_MIN_SHARE = 0.1  # a flag on at least 10% of an exercise's repetitions is notable


@dataclass(frozen=True)
class RenderedReport:
    pdf: bytes
    sha256: str
    pages: int


@dataclass(frozen=True)
class FormWarning:
    title: str
    label: str
    count: int
    reps: int

    @property
    def share(self) -> float:
        return self.count / self.reps


def render_report(
    *,
    patient: Patient,
    first: datetime.date,
    last: datetime.date,
    assessment: str = "",
    plan: str = "",
    made_at: datetime.datetime | None = None,
) -> RenderedReport:
    from weasyprint import HTML  # loads pango: only where PDFs are made

    progress = progress_of_patient(patient=patient, first=first, last=last)
    html = render_to_string(
        "reports/progress_report.html",
        _context(patient, progress, assessment, plan, made_at or timezone.now()),
    )
    document = HTML(string=html).render()
    pdf = document.write_pdf()
    return RenderedReport(
        pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), pages=len(document.pages)
    )


def _context(
    patient: Patient,
    progress: Progress,
    assessment: str,
    plan: str,
    made_at: datetime.datetime,
) -> dict:
    measures = [measure_of(series) for series in progress.rom]
    therapist = patient.therapist
    return {
        "patient": patient,
        "therapist": therapist,
        "clinic": therapist.clinic or "Rehabilitation clinic",
        "progress": progress,
        "made_at": timezone.localtime(made_at),
        "measures": measures,
        "charts": _charts(progress),
        "form_warnings": _form_warnings(measures),
        "wellbeing": _wellbeing_summary(progress),
        "streaks": progress.streaks,
        "assessment": assessment,
        "plan": plan,
    }


def _charts(progress: Progress) -> dict[str, list[str]]:
    """SVG charts by report section: "rom", "adherence" and "wellbeing"."""
    charts: dict[str, list[str]] = {"rom": [], "adherence": [], "wellbeing": []}
    for name, fig in progress_figures(progress.for_print()):
        svg = figure_svg(fig, width=CHART_WIDTH_PX, height=int(fig.layout.height or 340))
        charts[name.split("-")[0]].append(svg)
    return charts


def _form_warnings(measures: list[Measure]) -> list[FormWarning]:
    warnings = [
        FormWarning(
            title=m.series.title,
            label=m.series.flag_labels.get(code, code.replace("_", " ")),
            count=count,
            reps=m.reps,
        )
        for m in measures
        for code, count in m.flagged.items()
    ]
    notable = [w for w in warnings if w.share >= FORM_WARNING_MIN_SHARE]
    return sorted(notable, key=lambda w: -w.share)


def _wellbeing_summary(progress: Progress) -> dict | None:
    """Pain and effort: the first and the last week of reports against the whole period."""
    reports = progress.wellbeing
    if not reports:
        return None
    days = [timezone.localdate(r.started_at) for r in reports]
    first_week = [r for r, day in zip(reports, days, strict=True) if (day - days[0]).days < 7]
    last_week = [r for r, day in zip(reports, days, strict=True) if (days[-1] - day).days < 7]
    return {
        "count": len(reports),
        "pain_mean": mean(r.pain_nrs for r in reports),
        "pain_max": max(r.pain_nrs for r in reports),
        "pain_first": mean(r.pain_nrs for r in first_week),
        "pain_last": mean(r.pain_nrs for r in last_week),
        "effort_mean": mean(r.effort_borg for r in reports),
        "effort_first": mean(r.effort_borg for r in first_week),
        "effort_last": mean(r.effort_borg for r in last_week),
    }
