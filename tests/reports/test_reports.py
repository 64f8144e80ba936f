"""Progress reports end to end without a browser: the request, the Celery task (eager here), the
real PDF read back with poppler, the download, the exports' responses and the command line."""

import hashlib
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from reports.models import ProgressReport
from tests.conftest import World, client_for
from web import figures

SECTIONS = [
    "Progress report",
    "Goals",
    "Objective measures",
    "Adherence",
    "Pain and effort",
    "Form warnings",
    "Assessment",
    "Plan",
    "Signature",
]
SAFE_NAME = re.compile(r'attachment; filename="[a-z0-9.-]+"')


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def pdf_pages_as_png(pdf: bytes, tmp_path: Path) -> list[Path]:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "page")], check=True)
    return sorted(tmp_path.glob("page-*.png"))


@pytest.fixture
def request_report(
    world: World, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> Callable:
    """POST the therapist's form; Celery (eager here) runs when the request commits."""

    def post(**fields: str) -> ProgressReport:
        client = client_for(world, "therapist_a")
        data = {"first_day": "", "last_day": "", "assessment": "", "plan": "", **fields}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("report_new", args=[world.p.pk]), data)
        assert response.status_code == 302, response.content.decode()[:500]
        return ProgressReport.objects.get(pk=response["Location"].rstrip("/").split("/")[-1])

    return post


@pytest.fixture
def period(world: World) -> dict[str, str]:
    day = world.a.completed_session.started_at.date()
    return {"first_day": f"{day.replace(day=1)}", "last_day": f"{day}"}


def test_a_requested_report_is_made_and_its_pdf_has_every_section(
    request_report: Callable, world: World, period: dict[str, str], tmp_path: Path
) -> None:
    report = request_report(
        **period, assessment="Knee flexion improving.\nNo effusion.", plan="Add step-ups."
    )
    report.refresh_from_db()
    assert report.status == ProgressReport.Status.READY, report.error
    pdf = bytes(report.pdf)
    assert pdf.startswith(b"%PDF-")
    assert report.pdf_sha256 == hashlib.sha256(pdf).hexdigest()
    assert len(pdf_pages_as_png(pdf, tmp_path)) == report.pages >= 2
    text = pdf_text(pdf, tmp_path)
    for section in SECTIONS:
        assert section in text, section
    for fact in [
        "Pat A",
        "Thera A",
        "Total knee arthroplasty",
        "Heel slide (right)",
        "No effusion",
    ]:
        assert fact in text, fact


def test_the_report_page_polls_a_status_and_offers_the_download_when_ready(
    request_report: Callable, world: World, period: dict[str, str]
) -> None:
    report = request_report(**period)
    client = client_for(world, "therapist_a")
    status = client.get(reverse("report_status", args=[report.pk])).json()
    assert status["status"] == "ready" and status["done"]
    assert status["download"] == reverse("report_download", args=[report.pk])
    page = client.get(reverse("report_detail", args=[report.pk])).content.decode()
    assert "Download PDF" in page and report.pdf_sha256 in page


@pytest.mark.parametrize("actor", ["therapist_a", "patient_p"])
def test_the_download_is_never_cached_and_has_a_safe_name(world: World, actor: str) -> None:
    response = client_for(world, actor).get(reverse("report_download", args=[world.a.report.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"]
    assert SAFE_NAME.fullmatch(response["Content-Disposition"])
    assert response.content == bytes(world.a.report.pdf or b"")


def test_a_report_still_being_made_is_not_downloaded(world: World) -> None:
    report = world.a.report
    ProgressReport.objects.filter(pk=report.pk).update(status=ProgressReport.Status.RUNNING)
    response = client_for(world, "therapist_a").get(reverse("report_download", args=[report.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("report_detail", args=[report.pk])


def test_a_report_fails_with_a_clear_reason_when_chromium_is_missing(
    request_report: Callable,
    world: World,
    period: dict[str, str],
    settings: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(figures, "_server_started", False)
    settings.CHROMIUM_PATH = "/nonexistent/chromium"  # type: ignore[attr-defined]
    report = request_report(**period)
    report.refresh_from_db()
    assert report.status == ProgressReport.Status.FAILED
    assert "Chromium is needed" in report.error
    assert report.pdf is None and report.pdf_sha256 == ""
    status = client_for(world, "therapist_a").get(reverse("report_status", args=[report.pk]))
    assert status.json()["done"] and status.json()["download"] is None


@pytest.mark.parametrize(
    ("first", "last", "error"),
    [
        ("2025-03-10", "2025-03-01", "The period ends before it starts."),
        ("2025-03-01", "2999-01-01", "The period cannot end in the future."),
        ("2020-01-01", "2025-01-01", "A period can cover at most two years."),
        ("yesterday", "2025-01-01", "Enter a valid date."),
    ],
)
def test_a_bad_period_is_refused_and_nothing_is_queued(
    world: World, first: str, last: str, error: str
) -> None:
    client = client_for(world, "therapist_a")
    before = ProgressReport.objects.count()
    data = {"first_day": first, "last_day": last, "assessment": "", "plan": ""}
    response = client.post(reverse("report_new", args=[world.p.pk]), data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert ProgressReport.objects.count() == before
    export = client.get(
        reverse("export_csv", args=[world.p.pk]), {"first_day": first, "last_day": last}
    )
    assert export.status_code == 400


def test_a_finished_report_is_not_made_twice(
    request_report: Callable, world: World, period: dict[str, str]
) -> None:
    from reports.services import report_generate

    report = request_report(**period)
    report.refresh_from_db()
    sha = report.pdf_sha256
    report_generate(report=report)  # a duplicated task
    report.refresh_from_db()
    assert (report.status, report.pdf_sha256) == (ProgressReport.Status.READY, sha)


@pytest.mark.parametrize(
    ("name", "content_type", "suffix"),
    [("export_csv", "text/csv", ".csv"), ("export_fhir", "application/fhir+json", ".fhir.json")],
)
def test_exports_are_attachments_that_are_never_cached(
    world: World, name: str, content_type: str, suffix: str
) -> None:
    response = client_for(world, "therapist_a").get(reverse(name, args=[world.p.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert "no-store" in response["Cache-Control"]
    assert SAFE_NAME.fullmatch(response["Content-Disposition"])
    assert response["Content-Disposition"].endswith(f'{suffix}"')


def test_the_command_line_writes_the_same_report(world: World, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    call_command("progress_report", str(world.p.pk), "--days", "30", "--out", str(out))
    text = pdf_text(out.read_bytes(), tmp_path)
    assert all(section in text for section in SECTIONS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["00000000-0000-4000-8000-000000000000"], "No patient with id"),
        (["{p}", "--days", "0"], "--days must be between 1 and 732."),
        (
            ["{p}", "--out", "/nonexistent/dir/report.pdf"],
            "Cannot write /nonexistent/dir/report.pdf",
        ),
    ],
)
def test_the_command_line_explains_bad_input(
    world: World, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [a.format(p=world.p.pk) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r.pdf")]
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("progress_report", *args)


def test_the_therapists_patient_page_draws_the_charts_from_json(world: World) -> None:
    response = client_for(world, "therapist_a").get(reverse("patient_detail", args=[world.p.pk]))
    page = response.content.decode()
    assert 'data-figure="chart-rom-heel_slide-data"' in page
    assert '<script id="chart-rom-heel_slide-data" type="application/json">' in page
    assert 'data-figure="chart-adherence-data"' in page
    assert "plotly/plotly.min.js" in page and "js/charts.js" in page
    assert "<script>" not in page  # no inline script


def test_the_patient_sees_simpler_charts_and_their_ready_reports(world: World) -> None:
    page = client_for(world, "patient_p").get(reverse("history")).content.decode()
    assert 'data-figure="chart-rom-heel_slide-data"' in page
    assert "Best" not in page.split('id="chart-rom-heel_slide-data"')[1].split("</script>")[0]
    assert reverse("report_download", args=[world.a.report.pk]) in page


def test_a_sessions_page_overlays_its_repetitions(world: World) -> None:
    url = reverse("session_detail", args=[world.a.completed_session.pk])
    page = client_for(world, "therapist_a").get(url).content.decode()
    assert 'data-figure="chart-session-data"' in page
