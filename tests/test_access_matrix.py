"""Every route that takes an object id, against the whole cast.

The owner gets the page (200) or the action's redirect (302); every other logged-in actor gets 404,
the same as for an object that does not exist; anonymous users are sent to the login page.
`test_every_object_route_is_in_the_matrix` fails when a new route with an id is not listed here.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from analysis.exports import tracks_to_npz
from analysis.kinematics import PoseSeries
from analysis.people import PersonTrack
from sessions.models import VideoUpload
from tests.conftest import CAST, World, client_for


@dataclass(frozen=True)
class Route:
    kwargs: Callable[[World], dict[str, Any]]
    allowed: frozenset[str]
    method: str = "get"


def _first_line(world: World) -> Any:
    return world.a.protocol.prescriptions.order_by("position").first()


A = frozenset({"therapist_a"})
P = frozenset({"patient_p"})

MATRIX: dict[str, Route] = {
    "patient_detail": Route(lambda w: {"patient_id": w.p.pk}, A),
    "patient_access_history": Route(lambda w: {"patient_id": w.p.pk}, A),
    "patient_edit": Route(lambda w: {"patient_id": w.p.pk}, A),
    "patient_reinvite": Route(lambda w: {"patient_id": w.p.pk}, A, "post"),
    "assignment_new": Route(lambda w: {"patient_id": w.p.pk}, A),
    "assignment_edit": Route(lambda w: {"assignment_id": w.p.assignments.get().pk}, A),
    "protocol_edit": Route(lambda w: {"protocol_id": w.a.protocol.pk}, A),
    "exercise_detail": Route(lambda w: {"exercise_id": w.a.custom_exercise.pk}, A),
    "exercise_edit": Route(lambda w: {"exercise_id": w.a.custom_exercise.pk}, A),
    "alert_acknowledge": Route(lambda w: {"alert_id": w.a.alert.pk}, A, "post"),
    "session_start": Route(lambda w: {"prescription_id": _first_line(w).pk}, P, "post"),
    "session_detail": Route(lambda w: {"session_id": w.a.completed_session.pk}, A | P),
    "session_live": Route(lambda w: {"session_id": w.a.open_session.pk}, P),
    "session_complete": Route(lambda w: {"session_id": w.a.open_session.pk}, P, "post"),
    "session_report": Route(lambda w: {"session_id": w.a.completed_session.pk}, P),
    "upload_for_patient": Route(lambda w: {"patient_id": w.p.pk}, A),
    "upload_detail": Route(lambda w: {"upload_id": _upload(w)}, A | P),
    "upload_status": Route(lambda w: {"upload_id": _upload(w)}, A | P),
    "upload_export": Route(lambda w: {"upload_id": _analysed_upload(w), "fmt": "coco"}, A | P),
    "report_new": Route(lambda w: {"patient_id": w.p.pk}, A),
    "report_detail": Route(lambda w: {"report_id": w.a.report.pk}, A | P),
    "report_status": Route(lambda w: {"report_id": w.a.report.pk}, A | P),
    "report_download": Route(lambda w: {"report_id": w.a.report.pk}, A | P),
    "export_csv": Route(lambda w: {"patient_id": w.p.pk}, A | P),
    "export_fhir": Route(lambda w: {"patient_id": w.p.pk}, A | P),
}

# Routes with ids that are not object-scoped by role: covered by their own tests.
NOT_ROLE_SCOPED = {
    "password_set": "token-protected; see tests/patients/test_invitations.py",
}


def _upload(world: World) -> Any:
    line = _first_line(world)
    return VideoUpload.objects.create(
        patient=world.p, prescription=line, exercise=line.exercise, side=line.side
    ).pk


def _analysed_upload(world: World) -> Any:
    """An upload whose landmarks are kept: one person standing still for two frames."""
    upload = VideoUpload.objects.get(pk=_upload(world))
    still = PoseSeries(
        t_s=np.array([0.0, 0.1]),
        pixels=np.full((2, 33, 2), 100.0),
        world=np.zeros((2, 33, 3)),
        visibility=np.ones((2, 33)),
    )
    upload.landmarks = tracks_to_npz([PersonTrack(1, still)], image_size=(640, 480), fps=10.0)
    upload.status = VideoUpload.Status.DONE
    upload.save()
    return upload.pk


def _object_routes() -> set[str]:
    """Names of the project's routes (admin aside) whose pattern takes an argument."""
    names: set[str] = set()

    def walk(patterns: list[Any], namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and pattern.pattern.converters:
                names.add(f"{namespace}:{pattern.name}" if namespace else str(pattern.name))

    walk(get_resolver().url_patterns, None)
    return {name for name in names if not name.startswith("admin:")}


def test_every_object_route_is_in_the_matrix() -> None:
    missing = _object_routes() - set(MATRIX) - set(NOT_ROLE_SCOPED)
    assert not missing, f"add these routes to the access matrix: {sorted(missing)}"


@pytest.mark.parametrize("actor", CAST)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_object_routes_answer_only_their_owner(world: World, name: str, actor: str) -> None:
    route = MATRIX[name]
    url = reverse(name, kwargs=route.kwargs(world))
    response = getattr(client_for(world, actor), route.method)(url)
    if actor == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    elif actor in route.allowed:
        assert response.status_code == (200 if route.method == "get" else 302)
    else:
        assert response.status_code == 404


THERAPIST_PAGES = [
    "roster",
    "patient_new",
    "protocol_list",
    "protocol_new",
    "exercise_list",
    "exercise_new",
]
PATIENT_PAGES = ["today", "history", "upload_new"]


@pytest.mark.parametrize("actor", CAST)
@pytest.mark.parametrize("name", THERAPIST_PAGES + PATIENT_PAGES)
def test_role_pages_answer_only_their_role(world: World, name: str, actor: str) -> None:
    response = client_for(world, actor).get(reverse(name))
    if actor == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    elif actor.startswith("therapist") == (name in THERAPIST_PAGES):
        assert response.status_code == 200
    else:
        assert response.status_code == 404


@pytest.mark.parametrize("actor", ["therapist_a", "therapist_b"])
def test_library_exercises_are_readable_by_every_therapist(world: World, actor: str) -> None:
    squat = world.a.custom_exercise.__class__.objects.get(slug="squat", owner=None)
    client = client_for(world, actor)
    assert client.get(reverse("exercise_detail", args=[squat.pk])).status_code == 200
    assert client.get(reverse("exercise_edit", args=[squat.pk])).status_code == 404


@pytest.mark.parametrize("actor", ["patient_p", "patient_q"])
def test_patients_cannot_browse_the_library(world: World, actor: str) -> None:
    squat = world.a.custom_exercise.__class__.objects.get(slug="squat", owner=None)
    response = client_for(world, actor).get(reverse("exercise_detail", args=[squat.pk]))
    assert response.status_code == 404


def test_a_malformed_or_unknown_id_answers_404(world: World) -> None:
    client = client_for(world, "therapist_a")
    assert client.get("/clinic/patients/not-a-uuid/").status_code == 404
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/clinic/patients/{unknown}/").status_code == 404
    assert client.get(reverse("exercise_new") + "?from=not-a-uuid").status_code == 404


@pytest.mark.parametrize("actor", CAST)
def test_admin_is_for_staff_only(world: World, actor: str) -> None:
    client = client_for(world, actor)
    for model in admin.site._registry:
        obj = model._default_manager.first()
        if obj is None:
            continue
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
