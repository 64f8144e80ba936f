"""The therapist's reference movement of an exercise for a patient: which one is in use, what it
sets for the patient's counter, and how closely each repetition follows it.

A reference is made from an uploaded recording (sessions.uploads, purpose REFERENCE): only its
joint-angle templates and a demonstration skeleton are kept (analysis.similarity), never video.
The newest reference of a patient's exercise is the one in use.
"""

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.kinematics import PoseSeries
from analysis.repetitions import RepetitionMetrics
from analysis.similarity import (
    ReferenceTemplate,
    reference_from_poses,
    score_repetition,
    thresholds_from_reference,
)
from analysis.video import count_repetitions
from patients.models import Exercise, Prescription
from sessions.models import ExerciseSession, ReferenceMovement, VideoUpload
from sessions.recordings import Recording, UploadRefused


def reference_in_use(*, patient_id: Any, exercise_id: Any) -> ReferenceMovement | None:
    return ReferenceMovement.objects.filter(patient_id=patient_id, exercise_id=exercise_id).first()


def target_deg(patient_id: Any, exercise: Exercise, prescription: Prescription | None) -> float:
    """The angle a session aims for: the peak of the therapist's reference movement for this
    patient when there is one (what the prescription means for them), else the prescription's,
    else the exercise's default."""
    reference = reference_in_use(patient_id=patient_id, exercise_id=exercise.pk)
    if reference is not None:
        return reference.target_deg
    return prescription.target_rom_deg if prescription else exercise.default_target_deg


def template_of(reference: ReferenceMovement) -> ReferenceTemplate:
    return ReferenceTemplate.from_json(json.dumps(reference.template))


def reference_record(
    *, upload: VideoUpload, poses: PoseSeries, reps: Sequence[RepetitionMetrics], side: str
) -> ReferenceMovement:
    """The reference made from an analysed recording of the therapist (ValueError, with a message
    for the therapist, when it holds no repetition)."""
    template = reference_from_poses(poses, upload.exercise.definition(), reps, side)
    target_deg, expected_rom_deg = thresholds_from_reference(template)
    return ReferenceMovement.objects.create(
        patient=upload.patient,
        exercise=upload.exercise,
        side=upload.side,
        recorded_by=upload.uploaded_by,
        template=json.loads(template.to_json()),
        repetitions=template.count,
        target_deg=target_deg,
        expected_rom_deg=expected_rom_deg,
    )


def reference_from_recording(upload: VideoUpload, recording: Recording) -> None:
    """The finisher of purpose REFERENCE: the therapist's recording becomes the reference movement
    in use for the patient's exercise."""
    poses = recording.tracks[0].poses
    exercise = upload.exercise.definition()
    _side, reps, _partials = count_repetitions(poses, exercise, side=upload.side)
    try:
        upload.reference = reference_record(upload=upload, poses=poses, reps=reps, side=upload.side)
    except ValueError as error:  # no repetition counted: the message says how to record again
        raise UploadRefused(str(error).capitalize() + ".") from error


def demonstration_of(reference: ReferenceMovement | None) -> dict[str, Any] | None:
    """What the page's demonstration skeleton plays (static/js/reference-demo.js), or None."""
    if reference is None:
        return None
    demonstration = reference.template.get("demonstration") or {}
    if not demonstration.get("frames"):
        return None
    return {"fps": demonstration["fps"], "frames": demonstration["frames"]}


def rep_similarity(
    *, session: ExerciseSession, data: RepetitionMetrics
) -> tuple[float | None, list[str]]:
    """(0-100 score, deviating joints) of a repetition against the reference in use for its
    exercise; (None, []) without a reference or when no compared joint was seen in both."""
    reference = reference_in_use(patient_id=session.patient_id, exercise_id=session.exercise_id)
    if reference is None or not data.joint_traces_deg:
        return None, []
    traces = {name: np.asarray(trace, dtype=float) for name, trace in data.joint_traces_deg.items()}
    try:
        similarity = score_repetition(template_of(reference), traces, side=data.side)
    except ValueError:
        return None, []
    return similarity.score, similarity.deviating_joints
