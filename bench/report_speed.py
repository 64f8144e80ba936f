"""Speed of the progress charts and the PDF report for a patient with a year of daily sessions.

    .venv/bin/python bench/report_speed.py [--days 365] [--rounds 5] [--database-url URL]

Builds, in a fresh database (SQLite in a temporary folder unless --database-url), one patient
with a knee protocol of three exercises done every day for `days` days: 3 sessions a day, 3 x 10
repetitions each with their 30-point angle traces, a pain report after each session. Then it
times, side by side in one run:
- the query behind every chart (`progress_of_patient`) and the number of queries it takes;
- the therapist's patient page: the same query plus every figure as JSON (what the view does);
- the PDF report of the whole year and of the default 30 days (data, SVG charts, WeasyPrint).
The first PDF also starts kaleido's browser, which a Celery worker does once: it is printed on
its own ("cold") and left out of the medians. Target: the year's PDF in under 3 s.
"""

import argparse
import datetime
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    os.environ.pop("REDIS_URL", None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["REHAB_VAR_DIR"] = tempfile.mkdtemp(prefix="report-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rehab.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    patient = build_year(days=args.days)
    run(patient, days=args.days, rounds=args.rounds)
    if args.database_url:
        therapist = patient.therapist
        patient.user.delete()  # the whole history cascades away
        therapist.user.delete()


def build_year(*, days: int) -> Any:
    """One patient, three exercises a day for `days` days, written with bulk_create."""
    import numpy as np
    from django.utils import timezone

    from analysis.exercises import BY_SLUG
    from patients.models import Exercise
    from patients.services import (
        PatientFields,
        assignment_save,
        patient_create,
        protocol_save,
        therapist_create,
    )
    from sessions.models import ExerciseSession, PainReport, Repetition

    started = time.perf_counter()
    suffix = str(int(time.time()))
    therapist = therapist_create(
        email=f"bench.therapist.{suffix}@example.org",
        first_name="Bench",
        last_name="Therapist",
        password=secrets.token_urlsafe(16),
    )
    patient = patient_create(
        therapist=therapist,
        fields=PatientFields(
            first_name="Year",
            last_name="Long",
            email=f"bench.patient.{suffix}@example.org",
            condition="Total knee arthroplasty",
            affected_side="right",
        ),
    )
    slugs = ("heel_slide", "straight_leg_raise", "sit_to_stand")
    lines = [
        {
            "exercise": Exercise.objects.get(slug=slug, owner=None),
            "side": "right",
            "sets": 3,
            "reps": 10,
            "hold_s": 0,
            "rest_s": 30,
            "target_rom_deg": BY_SLUG[slug].default_target_deg,
            "sessions_per_week": 7,
            "notes": "",
        }
        for slug in slugs
    ]
    protocol = protocol_save(
        therapist=therapist, protocol=None, name="Knee, daily", notes="", lines=lines
    )
    today = timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    assignment_save(patient=patient, protocol=protocol, start_date=first, end_date=today)

    rng = np.random.default_rng(7)
    sessions, reps, reports = [], [], []
    for day in range(days):
        moment = timezone.make_aware(
            datetime.datetime.combine(first + datetime.timedelta(days=day), datetime.time(9))
        )
        for n, line in enumerate(protocol.prescriptions.select_related("exercise")):
            target = line.target_rom_deg
            peak = target * (0.6 + 0.4 * min(day / (days * 0.7), 1.0))
            session = ExerciseSession(
                patient=patient,
                prescription=line,
                exercise=line.exercise,
                side="right",
                status=ExerciseSession.Status.COMPLETED,
                started_at=moment + datetime.timedelta(minutes=10 * n),
                ended_at=moment + datetime.timedelta(minutes=10 * n + 8),
                target_sets=3,
                target_reps=10,
                target_rom_deg=target,
                reps_counted=30,
            )
            sessions.append(session)
            for set_number in (1, 2, 3):
                for index in range(1, 11):
                    top = float(peak + rng.normal(0, 2))
                    trace = list(np.round(top * np.sin(np.linspace(0, np.pi, 30)) + 2, 1))
                    reps.append(
                        Repetition(
                            session=session,
                            set_number=set_number,
                            index=index,
                            side="right",
                            start_s=4.0 * index,
                            end_s=4.0 * index + 3,
                            min_deg=2.0,
                            max_deg=top + 2,
                            rom_deg=top,
                            duration_s=3.0,
                            peak_velocity_dps=90.0,
                            form_flags=["trunk_lean"] if rng.random() < 0.05 else [],
                            trace_deg=trace,
                        )
                    )
            reports.append(
                PainReport(
                    patient=patient,
                    session=session,
                    pain_nrs=int(rng.integers(1, 5)),
                    effort_borg=float(rng.choice([2.0, 3.0, 4.0])),
                )
            )
    ExerciseSession.objects.bulk_create(sessions, batch_size=500)
    Repetition.objects.bulk_create(reps, batch_size=2000)
    PainReport.objects.bulk_create(reports, batch_size=500)
    print(
        f"history: {len(sessions)} sessions, {len(reps)} repetitions, {len(reports)} pain "
        f"reports over {days} days (built in {time.perf_counter() - started:.1f} s)"
    )
    return patient


def timed(function: Callable[[], object], rounds: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def run(patient: Any, *, days: int, rounds: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from analysis.charts import progress_figures
    from reports.pdf import render_report
    from sessions.selectors import progress_of_patient
    from web.figures import page_figures

    today = timezone.localdate()
    year = today - datetime.timedelta(days=days - 1)
    month = today - datetime.timedelta(days=29)

    with CaptureQueriesContext(connection) as queries:
        progress_of_patient(patient=patient, first=year, last=today)
    query_s, _ = timed(lambda: progress_of_patient(patient=patient, first=year, last=today), rounds)

    def page() -> None:
        progress = progress_of_patient(patient=patient, first=year, last=today)
        page_figures(progress_figures(progress))

    page_s, _ = timed(page, rounds)
    started = time.perf_counter()
    cold = render_report(patient=patient, first=year, last=today)
    cold_s = time.perf_counter() - started
    pdf_year_s, _ = timed(lambda: render_report(patient=patient, first=year, last=today), rounds)
    pdf_month_s, _ = timed(lambda: render_report(patient=patient, first=month, last=today), rounds)

    rows = [
        (f"chart data, {days} days", f"median {query_s * 1000:6.1f} ms, {len(queries)} queries"),
        (f"patient page charts, {days} days", f"median {page_s * 1000:6.1f} ms (data + JSON)"),
        ("PDF, cold (starts the browser)", f"{cold_s:6.2f} s, {cold.pages} pages"),
        (f"PDF, {days} days", f"median {pdf_year_s:6.2f} s (target < 3 s)"),
        ("PDF, last 30 days", f"median {pdf_month_s:6.2f} s"),
        ("ratio PDF year / PDF 30 days", f"{pdf_year_s / pdf_month_s:6.2f}"),
    ]
    for label, figure in rows:
        print(f"{label:34} {figure}")


if __name__ == "__main__":
    main()
