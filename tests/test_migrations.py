"""Migrations: PainReport and Alert moved from the patients app to sessions by state-only
migrations. A database holding the demo clinic at the schema before the move keeps every row and
reads them through the moved models afterwards; undoing the move loses nothing either."""

import io

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sessions.models import Alert, PainReport

BEFORE_THE_MOVE = [
    ("patients", "0005_exercise_max_velocity"),
    ("exercise_sessions", "0005_repetition_quality_and_sides"),
]
MOVED_TABLES = ("patients_painreport", "patients_alert")


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 # nosec B608 # constant names
        return int(cursor.fetchone()[0])


def _leaves() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_demo_clinic_survives_the_move_both_ways() -> None:
    call_command("demo_clinic", stdout=io.StringIO())
    counts = {table: _rows(table) for table in MOVED_TABLES}
    assert counts["patients_painreport"] > 50 and counts["patients_alert"] > 0
    try:
        _migrate(BEFORE_THE_MOVE)
        assert {table: _rows(table) for table in MOVED_TABLES} == counts
        # As at the current main: the content types are the patients app's.
        assert set(
            ContentType.objects.filter(model__in=["painreport", "alert"]).values_list(
                "app_label", flat=True
            )
        ) == {"patients"}
    finally:
        _migrate(_leaves())
        ContentType.objects.clear_cache()
    assert PainReport.objects.count() == counts["patients_painreport"]
    assert Alert.objects.count() == counts["patients_alert"]
    report = PainReport.objects.select_related("session", "patient").first()
    assert report is not None and report.session.patient_id == report.patient_id
    # The content types moved with the models: admin history and permissions still point at them.
    assert ContentType.objects.get_for_model(PainReport).app_label == "exercise_sessions"
    assert not ContentType.objects.filter(app_label="patients", model="painreport").exists()


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree() -> None:
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
