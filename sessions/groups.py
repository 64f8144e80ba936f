"""Several people in one recording (a group class, or a patient beside their therapist): each
person's repetitions, and how well each moves in step with a chosen reference: another person in
the video, or the therapist's reference movement of the exercise.

The analysis (an upload of purpose GROUP) tracks every person (analysis.people) and counts each
one's repetitions; the comparison is recomputed from the stored landmarks whenever the therapist
chooses another reference, so the page and its figures always agree with the numbers.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from analysis.charts import aligned_curves_figure
from analysis.exercises import ExerciseDefinition
from analysis.exports import tracks_from_npz
from analysis.kinematics import SIDES
from analysis.people import PersonTrack, track_people
from analysis.similarity import (
    joint_trajectories,
    played_repeatedly,
    synchronisation,
)
from analysis.video import count_repetitions
from sessions.models import VideoUpload
from sessions.recordings import NOBODY, Frames, Recording, UploadRefused
from sessions.references import reference_in_use, template_of

THERAPIST = "reference"  # the choice of the therapist's reference movement as the reference
MIN_SEEN_SHARE = 0.2  # a person in view for less of the video is listed but not compared


@dataclass(frozen=True)
class Person:
    track_id: int
    frames_seen: int
    side: str
    reps: int
    mean_rom_deg: float | None
    best_peak_deg: float | None


@dataclass(frozen=True)
class InStep:
    """One person against the reference: the synchronisation score and delay, and the figure of
    their aligned angle curves; `problem` says why they could not be compared."""

    track_id: int
    score: float | None
    lag_s: float | None
    figure: go.Figure | None
    problem: str = ""


def people_in_recording(upload: VideoUpload, frames: Frames) -> list[PersonTrack]:
    """The tracking step of purpose GROUP: every person, each with their own id."""
    tracks = track_people(frames)
    if not tracks:
        raise UploadRefused(NOBODY)
    return tracks


def group_from_recording(upload: VideoUpload, recording: Recording) -> None:
    """The finisher of purpose GROUP: each person's repetitions, and the comparison with the
    default reference (the therapist's reference movement if there is one, else the person seen
    longest)."""
    if not recording.tracks:
        raise UploadRefused(NOBODY)
    exercise = upload.exercise.definition()
    people = [_person(track, exercise) for track in recording.tracks]
    reference = _default_reference(upload, people)
    upload.result = {
        "people": [vars(person) for person in people],
        "reference": reference,
        "in_step": _in_step_rows(compare(upload, recording.tracks, recording.fps, reference)),
    }


def _person(track: PersonTrack, exercise: ExerciseDefinition) -> Person:
    side, reps, _partials = count_repetitions(track.poses, exercise)
    kept = [rep for rep in reps if rep.quality != "poor"] or reps
    peaks = [exercise.thresholds.peak_end(rep.min_deg, rep.max_deg) for rep in kept]
    return Person(
        track_id=track.track_id,
        frames_seen=track.frames_seen,
        side=side,
        reps=len(reps),
        mean_rom_deg=round(sum(rep.rom_deg for rep in kept) / len(kept), 1) if kept else None,
        best_peak_deg=exercise.thresholds.furthest(peaks) if peaks else None,
    )


def _default_reference(upload: VideoUpload, people: list[Person]) -> str:
    if reference_in_use(patient_id=upload.patient_id, exercise_id=upload.exercise_id):
        return THERAPIST
    return f"person:{max(people, key=lambda person: person.frames_seen).track_id}"


def reference_choices(upload: VideoUpload) -> list[tuple[str, str]]:
    """What the therapist may compare everyone with: each person, and the reference movement."""
    choices = [
        (f"person:{person['track_id']}", f"Person {person['track_id']}")
        for person in upload.result.get("people", [])
    ]
    if reference_in_use(patient_id=upload.patient_id, exercise_id=upload.exercise_id):
        choices.append((THERAPIST, "The therapist's reference movement"))
    return choices


def group_compare(upload: VideoUpload, reference: str) -> list[InStep]:
    """Everyone against `reference` (one of reference_choices), from the stored landmarks."""
    if upload.landmarks is None:
        return []
    stored = tracks_from_npz(bytes(upload.landmarks))
    return compare(upload, stored.tracks, stored.fps, reference)


def compare(
    upload: VideoUpload, tracks: list[PersonTrack], fps: float, reference: str
) -> list[InStep]:
    exercise = upload.exercise.definition()
    curves = {track.track_id: joint_trajectories(track.poses, exercise) for track in tracks}
    frames = len(tracks[0].poses) if tracks else 0
    if reference == THERAPIST:
        found = reference_in_use(patient_id=upload.patient_id, exercise_id=upload.exercise_id)
        if found is None:
            return []
        template = template_of(found)
        repeats = math.ceil(frames / max(1.0, template.rep_duration_s * fps)) + 1
        looped = played_repeatedly(template, fps, repeats)
        base = {name: values[:frames] for name, values in looped.items()}
        base_name, others = "Reference movement", list(curves)
    else:
        base_id = int(reference.removeprefix("person:"))
        if base_id not in curves:
            return []
        base, base_name = curves[base_id], f"Person {base_id}"
        others = [track_id for track_id in curves if track_id != base_id]
    seen = {track.track_id: track.frames_seen for track in tracks}
    return [
        _against(base, base_name, curves[track_id], track_id, exercise, fps)
        if seen[track_id] >= MIN_SEEN_SHARE * frames
        else InStep(track_id, None, None, None, "in view for too little of the video")
        for track_id in others
    ]


def _against(
    base: dict[str, np.ndarray],
    base_name: str,
    person: dict[str, np.ndarray],
    track_id: int,
    exercise: ExerciseDefinition,
    fps: float,
) -> InStep:
    try:
        result = synchronisation(base, person, fps)
    except ValueError as error:
        return InStep(track_id, None, None, None, str(error))
    joint = _shown_joint(base, person, exercise)
    figure = aligned_curves_figure(
        base[joint].tolist(),
        person[joint].tolist(),
        result.path,
        fps=fps,
        names=(base_name, f"Person {track_id}"),
        title=f"{joint.capitalize()}: person {track_id} aligned with {base_name.lower()}",
    )
    return InStep(track_id, result.score, result.lag_s, figure)


def _shown_joint(
    base: dict[str, np.ndarray], person: dict[str, np.ndarray], exercise: ExerciseDefinition
) -> str:
    """The exercise's own joint on the side both show most (any joint both show if the compared
    joints do not include it)."""
    own = [f"{side} {exercise.angle.joint}" for side in SIDES]
    shared = [name for name in base if name in person]
    return max(
        [name for name in own if name in shared] or shared,
        key=lambda name: int(np.isfinite(base[name]).sum() + np.isfinite(person[name]).sum()),
    )


def _in_step_rows(rows: list[InStep]) -> list[dict[str, Any]]:
    return [
        {"track_id": r.track_id, "score": r.score, "lag_s": r.lag_s, "problem": r.problem}
        for r in rows
    ]
