"""Offline analysis of a recorded exercise video: pose on every frame, zero-phase smoothed angles,
then the same repetition counter the live sessions use.

    analysis = analyze_video(Path("squats.mp4"), BY_SLUG["squat"], side="auto")
    analysis.as_json()   # the `analyze_video --json` contract
"""

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from analysis.counting import JOINT_PREFIX, PartialRepetition, RepetitionCounter, Sample
from analysis.exercises import AngleSpace, ExerciseDefinition
from analysis.filters import DEFAULT_FPS, sample_rate_hz, smooth_recorded
from analysis.form import form_measures
from analysis.kinematics import (
    SIDES,
    PoseSeries,
    choose_side,
    joint_angle_deg,
    single_side,
    world_space_frames,
)
from analysis.landmarks import Landmark
from analysis.people import OnFrames, box_around, choose_patient, track_people
from analysis.pose.engine import PoseEngine
from analysis.pose.types import Pose
from analysis.quality import quality_measures
from analysis.repetitions import RepetitionMetrics
from analysis.similarity import joint_trajectories

JSON_REP_FIELDS = (
    "index",
    "side",
    "start_s",
    "end_s",
    "min_deg",
    "max_deg",
    "rom_deg",
    "duration_s",
    "concentric_s",
    "eccentric_s",
    "peak_velocity_dps",
    "hold_s",
    "symmetry_pct",
    "form_flags",
    "quality",
    "quality_reasons",
)


class VideoAnalysisError(Exception):
    """The video cannot be analysed (unreadable, or nobody in it); the message says which."""


@dataclass(frozen=True)
class VideoAnalysis:
    exercise: str
    side: str
    frames: int
    fps_video: float
    fps_processed: float
    frames_with_pose: int
    reps: list[RepetitionMetrics]
    partial_reps: list[PartialRepetition]

    def as_json(self) -> dict[str, object]:
        return {
            "exercise": self.exercise,
            "side": self.side,
            "frames": self.frames,
            "fps_video": round(self.fps_video, 2),
            "fps_processed": round(self.fps_processed, 1),
            "frames_with_pose": self.frames_with_pose,
            "reps": [
                {key: value for key, value in asdict(rep).items() if key in JSON_REP_FIELDS}
                for rep in self.reps
            ],
            "partial_reps": len(self.partial_reps),
        }


def analyze_video(
    path: Path,
    exercise: ExerciseDefinition,
    *,
    side: str = "auto",
    target_deg: float | None = None,
    progress: OnFrames | None = None,
) -> VideoAnalysis:
    fps, total = _open_info(path)
    started = time.perf_counter()
    poses, frames_with_pose = track_poses(
        read_frames(path, fps), progress=progress, total=total, exercise=exercise
    )
    elapsed = time.perf_counter() - started
    if frames_with_pose == 0:
        raise VideoAnalysisError(f"no person found in {path.name}")
    chosen, reps, partials = count_repetitions(poses, exercise, side=side, target_deg=target_deg)
    return VideoAnalysis(
        exercise=exercise.slug,
        side=chosen,
        frames=len(poses),
        fps_video=fps,
        fps_processed=len(poses) / elapsed if elapsed > 0 else math.inf,
        frames_with_pose=frames_with_pose,
        reps=reps,
        partial_reps=partials,
    )


def read_frames(path: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, BGR frame) for every frame; times from the frame index, which stays
    monotonic where containers' own timestamps are sometimes not."""
    video = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            ok, frame = video.read()
            if not ok:
                return
            yield index / fps, frame
            index += 1
    finally:
        video.release()


class _Rows:
    """The poses of one person, frame by frame, as PoseSeries rows (NaN where not found)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.pixels: list[np.ndarray] = []
        self.world: list[np.ndarray] = []
        self.visibility: list[np.ndarray] = []
        self.found = 0
        self.size = (1, 1)  # (width, height) of the frames

    def add(self, t_s: float, pose: Pose | None) -> None:
        self.times.append(t_s)
        self.found += pose is not None
        self.pixels.append(pose.pixels if pose else np.full((33, 2), np.nan))
        self.world.append(pose.world if pose else np.full((33, 3), np.nan))
        self.visibility.append(pose.visibility if pose else np.zeros(33))

    def take_over(self, poses: PoseSeries) -> None:
        """The rows so far become those of `poses` (the same frames)."""
        self.pixels, self.world = list(poses.pixels), list(poses.world)
        self.visibility = list(poses.visibility)
        self.found = int((poses.visibility.max(axis=1) > 0).sum())

    def series(self) -> PoseSeries:
        if not self.times:
            return PoseSeries.empty_frames(np.zeros(0))
        return PoseSeries(
            t_s=np.array(self.times),
            pixels=np.array(self.pixels),
            world=np.array(self.world),
            visibility=np.array(self.visibility),
        )


def track_poses(
    frames: Iterable[tuple[float, np.ndarray]],
    *,
    progress: OnFrames | None = None,
    total: int = 0,
    engine: PoseEngine | None = None,
    exercise: ExerciseDefinition | None = None,
) -> tuple[PoseSeries, int]:
    """The patient's poses in timed frames, with the pose engine (a new one unless given); frames
    without them become NaN rows. The first CHOOSING_S seconds decide who the patient is: every
    person there is tracked too, and the engine follows the one exercising (choose_patient), not
    merely the most prominent one."""
    rows = _Rows()
    frames = iter(frames)
    later: list[tuple[float, np.ndarray]] = []
    with contextlib.nullcontext(engine) if engine else PoseEngine() as engine:

        def add(t_s: float, frame: np.ndarray) -> None:
            rows.size = (frame.shape[1], frame.shape[0])
            rows.add(t_s, engine.process(frame, t_s))
            if progress is not None:
                progress(len(rows.times), total)

        opening = _opening(frames, add, later)
        patient = choose_patient(track_people(opening), exercise)
        if patient is not None and not _same_person(rows.series(), patient.poses):
            rows.take_over(patient.poses)
            last = _last_pose(patient.poses, rows.size)
            if last is not None:
                engine.follow(box_around(last))
        for t_s, frame in itertools.chain(later, frames):
            add(t_s, frame)
    return rows.series(), rows.found


# How long the patient is looked for among everyone in view: long enough for a repetition to
# start, short enough that the extra cost (every person tracked) stays small.
CHOOSING_S = 3.0
SAME_PERSON_SHARE = 0.8  # frames whose hips agree, for two series to follow one person
SAME_PLACE_SIZES = 0.2  # hips this close (in body sizes) are the same person's


def _opening(
    frames: Iterator[tuple[float, np.ndarray]],
    add: Callable[[float, np.ndarray], None],
    later: list[tuple[float, np.ndarray]],
) -> Iterator[tuple[float, np.ndarray]]:
    """The frames of the first CHOOSING_S seconds, each also through the single-person engine
    (`add`); the first frame after them goes to `later`."""
    for t_s, frame in frames:
        if t_s >= CHOOSING_S:
            later.append((t_s, frame))
            return
        add(t_s, frame)
        yield t_s, frame


def _same_person(a: PoseSeries, b: PoseSeries) -> bool:
    """Whether two series of the same frames follow one person: their hips agree where both
    see them (nowhere both: not the same)."""
    hips = (Landmark.LEFT_HIP, Landmark.RIGHT_HIP)
    centre_a, centre_b = a.pixels[:, hips].mean(axis=1), b.pixels[:, hips].mean(axis=1)
    size = np.nanmax(np.ptp(a.pixels, axis=1), initial=1.0)  # the body's extent, lying or standing
    distance = np.linalg.norm(centre_a - centre_b, axis=1)
    both = np.isfinite(distance)
    if not both.any():
        return False
    return bool((distance[both] <= SAME_PLACE_SIZES * size).mean() >= SAME_PERSON_SHARE)


def _last_pose(poses: PoseSeries, size: tuple[int, int]) -> Pose | None:
    seen = np.flatnonzero(poses.visibility.max(axis=1) > 0)
    if not len(seen):
        return None
    i = int(seen[-1])
    return Pose(poses.pixels[i], poses.world[i], poses.visibility[i], image_size=size)


def count_repetitions(
    poses: PoseSeries,
    exercise: ExerciseDefinition,
    *,
    side: str = "auto",
    target_deg: float | None = None,
    expected_rom_deg: float | None = None,
) -> tuple[str, list[RepetitionMetrics], list[PartialRepetition]]:
    """The side measured ("left", "right" or "both"), the counted repetitions and the partial
    ones."""
    chosen = choose_side(poses, exercise) if side == "auto" else side
    fs = sample_rate_hz(poses.t_s)
    in_world = world_space_frames(poses, exercise)
    angles = {
        each: np.where(
            in_world,
            smooth_recorded(joint_angle_deg(poses, exercise.angle, each, AngleSpace.WORLD_3D), fs),
            smooth_recorded(joint_angle_deg(poses, exercise.angle, each, AngleSpace.IMAGE_2D), fs),
        )
        for each in SIDES
    }
    measured = form_measures(poses, single_side(chosen))  # one side stands for both
    measures = {name: smooth_recorded(values, fs) for name, values in measured.items()}
    measures |= quality_measures(poses, exercise)  # raw: seen flags and medians need no filter
    # Each repetition's joint angles, to compare it with a therapist's reference movement.
    measures |= {JOINT_PREFIX + name: v for name, v in joint_trajectories(poses, exercise).items()}
    counter = RepetitionCounter(
        exercise, side=chosen, target_deg=target_deg, expected_rom_deg=expected_rom_deg
    )
    for i, t_s in enumerate(poses.t_s):
        counter.update(
            Sample(
                t_s=float(t_s),
                left_deg=float(angles["left"][i]),
                right_deg=float(angles["right"][i]),
                measures={name: float(values[i]) for name, values in measures.items()},
            )
        )
    counter.finish()
    return chosen, counter.reps, counter.partials


def stated_fps(fps: float) -> float:
    """A container's stated frame rate, or DEFAULT_FPS when it states none that makes sense."""
    return fps if math.isfinite(fps) and 1 <= fps <= 1000 else DEFAULT_FPS


def video_fps(path: Path) -> float:
    """The frame rate the container states (DEFAULT_FPS when it states none that makes sense)."""
    return _open_info(path)[0]


def _open_info(path: Path) -> tuple[float, int]:
    """Frame rate and frame count, or a clear error when OpenCV cannot read the file."""
    if not path.is_file():
        raise VideoAnalysisError(f"no such file: {path}")
    video = cv2.VideoCapture(str(path))
    try:
        if not video.isOpened() or not video.grab():
            raise VideoAnalysisError(f"cannot read {path.name} as a video")
        fps = video.get(cv2.CAP_PROP_FPS)
        total = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        video.release()
    valid_fps = stated_fps(fps)
    return valid_fps, max(total, 0)
