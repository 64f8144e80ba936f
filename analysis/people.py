"""Every person in a recorded video, each followed by a persistent id.

A PersonTrack is one person's landmarks over all the frames of the video (NaN rows where that
person was not seen), so the single-person analysis (angles, repetitions, exports) runs on it
unchanged.

    tracks = track_people(read_frames(path, fps))   # [PersonTrack], ids 1, 2, ...

The multi-person engine (analysis.pose.multi) finds the poses in each frame; norfair's tracker
decides who is who:

- each pose is a norfair Detection of its body keypoints, their visibility as scores;
- a detection goes to the track whose predicted keypoints (norfair's Kalman filter per point) lie
  nearest, by the mean distance of the keypoints both see, relative to the person's height;
- a track lives on unmatched for HOLD_S (a short occlusion keeps the id) and is returned only
  after INITIALIZATION_S of matches (a one-frame ghost never gets an id);
- a track that ended stays on record for REID_HOLD_S: a new track that looks like it (torso and
  thigh colours, body proportions from the world landmarks) takes its id back, so a person who
  reappears, or whose track was lost while crossing someone, is the same person again.

A track seen in fewer than MIN_SEEN_S of frames is dropped: a real person stays in view longer
than a third of a second; ghosts on objects and half-seen bodies in one sweep do not.
"""

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from norfair import Detection, Tracker
from norfair.tracker import TrackedObject

from analysis.exercises import AngleSpace, ExerciseDefinition
from analysis.filters import DEFAULT_FPS
from analysis.kinematics import MIN_VISIBILITY, SIDES, PoseSeries, joint_angle_deg
from analysis.landmarks import Landmark
from analysis.pose.multi import BODY_POINTS, MultiPoseEngine, PersonInFrame
from analysis.pose.roi import BOX_MARGIN, RegionOfInterest, roi_from_keypoints
from analysis.pose.types import Pose
from analysis.similarity import JOINTS

OnFrames = Callable[[int, int], None]  # told (frames done, frames in total or 0 if unknown)

HOLD_S = 0.5  # hidden this long, a person keeps their track; longer, re-identification decides
INITIALIZATION_S = 0.1  # matched this long before a track gets an id
REID_HOLD_S = 30.0  # an ended track can be taken back this long (people step out and return)
MIN_SEEN_S = 0.3
# Largest mean keypoint distance, as a fraction of body height, for a pose to continue a track;
# people side by side stand about a third of a height apart, and the nearest track is matched
# first.
MATCH_DISTANCE = 0.25
# Largest appearance distance (appearance_distance, over 8-frame means) for a new track to take
# an ended one's id. On the two lab clips (bench/tracks) one person scored up to 0.47 against
# themselves at other times, two people 0.71 at least.
REID_DISTANCE = 0.55
# How much the body proportions weigh against the colours. BlazePose's world landmarks come at a
# near-canonical scale: on the lab clips proportions varied as much within a person (bending,
# reaching) as between people, so they only back the colours up.
PROPORTION_WEIGHT = 0.5
TRACKED_POINTS = (Landmark.NOSE, *BODY_POINTS)
MIN_COMMON_POINTS = 4  # fewer keypoints seen by both: compare all of them
HUE_BINS, SATURATION_BINS = 8, 4  # coarse: fine bins split one shirt under changing light
MIN_REGION_PX = 64  # fewer pixels in a body region: no colour for it
REGION_SHRINK = 0.2  # regions drawn this much towards their centre, to stay off the background


@dataclass(frozen=True)
class PersonTrack:
    """One tracked person: `track_id` stays the same across frames, occlusions and crossings;
    `poses` has one row per frame of the video (the same `t_s` for every track)."""

    track_id: int
    poses: PoseSeries

    @property
    def frames_seen(self) -> int:
        return int((self.poses.visibility.max(axis=1) > 0).sum())


@dataclass(frozen=True)
class Signature:
    """What a person looks like in one frame: hue-saturation histograms of the torso and of the
    thighs (None where the region is not in view) and segment lengths as shares of their sum."""

    torso: np.ndarray | None
    thighs: np.ndarray | None
    proportions: np.ndarray


@dataclass(frozen=True)
class _Seen:
    """What a norfair Detection carries: where it came from and the pose to report."""

    frame: int
    pose: Pose
    height_px: float


def track_people(
    frames: Iterable[tuple[float, np.ndarray]],
    *,
    progress: OnFrames | None = None,
    total: int = 0,
) -> list[PersonTrack]:
    """Every person in timed BGR frames (as analysis.video.read_frames gives them), with ids from
    1 in order of first appearance. Raises ValueError for frames of different sizes."""
    stream = iter(frames)
    head = list(itertools.islice(stream, 2))
    if not head:
        return []
    fps = _frame_rate([t_s for t_s, _ in head])
    tracker = _tracker(fps)
    ledger = _Ledger()
    times: list[float] = []
    with MultiPoseEngine() as engine:
        for index, (t_s, image) in enumerate(_same_size(itertools.chain(head, stream))):
            people = engine.process(image, t_s)
            hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
            before = list(tracker.tracked_objects)
            tracker.update([_detection(person, hsv, index) for person in people])
            ledger.record(before, tracker.tracked_objects, index)
            times.append(t_s)
            if progress is not None:
                progress(len(times), total)
    return ledger.tracks(np.array(times), min_seen=max(1, round(MIN_SEEN_S * fps)))


def people_summary(tracks: Iterable[PersonTrack]) -> list[dict[str, float | int]]:
    """One row per track for a table: id, frames seen, first and last time seen, mean height in
    pixels (the vertical extent of the landmarks seen)."""
    rows: list[dict[str, float | int]] = []
    for track in tracks:
        seen = track.poses.visibility.max(axis=1) > 0
        if not seen.any():
            continue
        times = track.poses.t_s[seen]
        heights = np.ptp(track.poses.pixels[seen, :, 1], axis=1)
        rows.append(
            {
                "track_id": track.track_id,
                "frames_seen": int(seen.sum()),
                "first_s": round(float(times[0]), 3),
                "last_s": round(float(times[-1]), 3),
                "mean_height_px": round(float(np.nanmean(heights)), 1),
            }
        )
    return rows


def _frame_rate(times: list[float]) -> float:
    if len(times) == 2 and times[1] > times[0]:
        return 1.0 / (times[1] - times[0])
    return DEFAULT_FPS


def _same_size(
    frames: Iterable[tuple[float, np.ndarray]],
) -> Iterator[tuple[float, np.ndarray]]:
    """The frames, checked to be of one size: a track's pixel rows mean nothing across sizes."""
    first: tuple[int, ...] | None = None
    for index, (t_s, image) in enumerate(frames):
        first = first or image.shape[:2]
        if image.shape[:2] != first:
            raise ValueError(
                f"frame {index} is {image.shape[1]}x{image.shape[0]} px; the frames before it "
                f"are {first[1]}x{first[0]} px"
            )
        yield t_s, image


def _tracker(fps: float) -> Tracker:
    hold = max(2, round(HOLD_S * fps))
    return Tracker(
        distance_function=keypoint_distance,
        distance_threshold=MATCH_DISTANCE,
        hit_counter_max=hold,
        initialization_delay=min(max(1, round(INITIALIZATION_S * fps)), hold - 1),
        detection_threshold=MIN_VISIBILITY,
        past_detections_length=8,
        reid_distance_function=reid_distance,
        reid_distance_threshold=REID_DISTANCE,
        reid_hit_counter_max=max(1, round(REID_HOLD_S * fps)),
    )


def _detection(person: PersonInFrame, hsv: np.ndarray, frame: int) -> Detection:
    points = list(TRACKED_POINTS)
    height_px = person.box.pixel_size(person.pose.image_size[0]) / BOX_MARGIN
    return Detection(
        points=person.pose.pixels[points],
        scores=person.pose.visibility[points],
        data=_Seen(frame=frame, pose=person.pose, height_px=height_px),
        embedding=signature(person.pose, hsv),
    )


def keypoint_distance(detection: Detection, tracked: TrackedObject) -> float:
    """Mean distance between a pose's keypoints and a track's predicted ones, over the points
    both see (all points if they share too few), as a fraction of the person's height."""
    both = (np.asarray(detection.scores) > MIN_VISIBILITY) & tracked.live_points
    if both.sum() < MIN_COMMON_POINTS:
        both = np.ones_like(both)
    found: np.ndarray = np.asarray(detection.points)
    predicted: np.ndarray = tracked.estimate
    gaps = np.linalg.norm(found[both] - predicted[both], axis=1)
    return float(gaps.mean() / detection.data.height_px)


def reid_distance(new: TrackedObject, old: TrackedObject) -> float:
    """How unlike each other a new track and an ended one look, over their recent poses."""
    return appearance_distance(_mean_signature(new), _mean_signature(old))


def _mean_signature(tracked: TrackedObject) -> Signature:
    detections = [*tracked.past_detections, tracked.last_detection]
    return mean_signature([d.embedding for d in detections])


def signature(pose: Pose, hsv: np.ndarray) -> Signature:
    """What the person in `pose` looks like in their frame (`hsv`: the frame in OpenCV's HSV)."""
    torso = [Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER, Landmark.RIGHT_HIP, Landmark.LEFT_HIP]
    thighs = [Landmark.LEFT_HIP, Landmark.RIGHT_HIP, Landmark.RIGHT_KNEE, Landmark.LEFT_KNEE]
    return Signature(
        torso=_region_histogram(hsv, pose.pixels[torso]),
        thighs=_region_histogram(hsv, pose.pixels[thighs]),
        proportions=body_proportions(pose.world),
    )


def _region_histogram(hsv: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
    """The normalised hue-saturation histogram inside a quadrilateral of the image."""
    if not np.isfinite(corners).all():
        return None
    center = corners.mean(axis=0)
    polygon = center + (corners - center) * (1 - REGION_SHRINK)
    height, width = hsv.shape[:2]
    left, top = np.clip(np.floor(polygon.min(axis=0)).astype(int), 0, [width, height])
    right, bottom = np.clip(np.ceil(polygon.max(axis=0)).astype(int) + 1, 0, [width, height])
    if right - left < 2 or bottom - top < 2:
        return None  # the region lies outside the picture
    crop = np.ascontiguousarray(hsv[top:bottom, left:right])
    mask = np.zeros(crop.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(polygon - [left, top]).astype(np.int32), (255,))
    if cv2.countNonZero(mask) < MIN_REGION_PX:
        return None
    histogram = cv2.calcHist(
        [crop], [0, 1], mask, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]
    ).ravel()
    return histogram / histogram.sum()


def body_proportions(world: np.ndarray) -> np.ndarray:
    """Shoulder width, hip width, trunk, arm and leg lengths (metres, from world landmarks, left
    and right averaged) as shares of their sum."""

    def length(*chain: Landmark) -> float:
        points = world[list(chain)]
        return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())

    def both_sides(*chain: str) -> float:
        left = length(*(Landmark[f"LEFT_{name}"] for name in chain))
        right = length(*(Landmark[f"RIGHT_{name}"] for name in chain))
        return (left + right) / 2

    mid_shoulder = (world[Landmark.LEFT_SHOULDER] + world[Landmark.RIGHT_SHOULDER]) / 2
    mid_hip = (world[Landmark.LEFT_HIP] + world[Landmark.RIGHT_HIP]) / 2
    segments = np.array(
        [
            length(Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER),
            length(Landmark.LEFT_HIP, Landmark.RIGHT_HIP),
            float(np.linalg.norm(mid_shoulder - mid_hip)),
            both_sides("SHOULDER", "ELBOW", "WRIST"),
            both_sides("HIP", "KNEE", "ANKLE"),
        ]
    )
    return segments / segments.sum()


def mean_signature(signatures: list[Signature]) -> Signature:
    """The average look over several frames (regions out of view in a frame left out)."""

    def mean_histogram(histograms: list[np.ndarray | None]) -> np.ndarray | None:
        seen = [h for h in histograms if h is not None]
        return np.mean(seen, axis=0) if seen else None

    return Signature(
        torso=mean_histogram([s.torso for s in signatures]),
        thighs=mean_histogram([s.thighs for s in signatures]),
        proportions=np.mean([s.proportions for s in signatures], axis=0),
    )


def appearance_distance(a: Signature, b: Signature) -> float:
    """0 for one look, growing with the difference: the mean Bhattacharyya distance of the colour
    histograms both have, plus PROPORTION_WEIGHT times the summed difference of proportions."""
    colours = [
        cv2.compareHist(x.astype(np.float32), y.astype(np.float32), cv2.HISTCMP_BHATTACHARYYA)
        for x, y in ((a.torso, b.torso), (a.thighs, b.thighs))
        if x is not None and y is not None
    ]
    colour = float(np.mean(colours)) if colours else 1.0
    return colour + PROPORTION_WEIGHT * float(np.abs(a.proportions - b.proportions).sum())


class _Ledger:
    """Which pose each norfair track took in each frame, and the tracks' final ids.

    norfair reports only the tracks alive now, and when it gives an ended track's id back it merges
    the new track into the old one and drops the new one; the ledger follows that merge so the
    new track's first frames go to the old id."""

    def __init__(self) -> None:
        self._poses: dict[TrackedObject, dict[int, Pose]] = {}

    def record(
        self, before: Sequence[TrackedObject], after: Sequence[TrackedObject], frame: int
    ) -> None:
        for tracked in after:
            seen: _Seen = tracked.last_detection.data
            if seen.frame == frame:
                self._poses.setdefault(tracked, {})[frame] = seen.pose
        for gone in set(before) - set(after):
            heir = next((t for t in after if t.last_detection is gone.last_detection), None)
            if heir is not None:
                taken = self._poses.pop(gone, {})
                self._poses[heir] = taken | self._poses.get(heir, {})

    def tracks(self, t_s: np.ndarray, *, min_seen: int) -> list[PersonTrack]:
        """Tracks that got an id and were seen in at least `min_seen` frames, numbered from 1 in
        order of first appearance."""
        kept = [
            poses
            for tracked, poses in self._poses.items()
            if tracked.id is not None and len(poses) >= min_seen
        ]
        kept.sort(key=min)
        return [
            PersonTrack(track_id=number, poses=_series(t_s, poses))
            for number, poses in enumerate(kept, start=1)
        ]


def _series(t_s: np.ndarray, poses: dict[int, Pose]) -> PoseSeries:
    series = PoseSeries.empty_frames(t_s)
    for frame, pose in poses.items():
        series.pixels[frame] = pose.pixels
        series.world[frame] = pose.world
        series.visibility[frame] = pose.visibility
    return series


# --- The patient among several people ----------------------------------------------------------
# A person seen in less of the frames than this share of the most-seen one is passing by (or a
# ghost of the detector on a patch of floor or furniture, which moves erratically).
PATIENT_MIN_SEEN_SHARE = 0.8
MOVEMENT_PERCENTILES = (5, 95)  # a joint's range of movement, robust to landmark glitches


def choose_patient(
    tracks: Sequence[PersonTrack], exercise: ExerciseDefinition | None = None
) -> PersonTrack | None:
    """Of the people in a recording, the one exercising: among those in view most of the time,
    the one whose joints move the most (the exercise's own joint when it is known). Not the
    largest or most central: a companion often stands nearer the camera than the patient."""
    if not tracks:
        return None
    most_seen = max(track.frames_seen for track in tracks)
    candidates = [t for t in tracks if t.frames_seen >= PATIENT_MIN_SEEN_SHARE * most_seen]
    return max(candidates, key=lambda track: (movement_deg(track.poses, exercise), -track.track_id))


def movement_deg(poses: PoseSeries, exercise: ExerciseDefinition | None) -> float:
    """How much a person moves: the range of the exercise's joint angle (the wider side), or the
    summed ranges of the compared joints (analysis.similarity.JOINTS) without an exercise."""
    angles = [exercise.angle] if exercise is not None else list(JOINTS.values())
    ranges = [
        max(_range_deg(joint_angle_deg(poses, angle, side, AngleSpace.IMAGE_2D)) for side in SIDES)
        for angle in angles
    ]
    return sum(ranges)


def _range_deg(angle: np.ndarray) -> float:
    seen = angle[np.isfinite(angle)]
    if len(seen) < 2:
        return 0.0
    low, high = np.percentile(seen, MOVEMENT_PERCENTILES)
    return float(high - low)


def box_around(pose: Pose) -> RegionOfInterest:
    """The top-down box of a pose, built as BlazePose builds its own: centred on the hips, turned
    upright along the hips-to-shoulders line, as wide as the circle around every landmark seen."""
    width, height = pose.image_size
    seen = pose.visibility >= MIN_VISIBILITY
    points = pose.pixels[seen] if seen.sum() >= 2 else pose.pixels
    hips = (pose.pixels[Landmark.LEFT_HIP] + pose.pixels[Landmark.RIGHT_HIP]) / 2
    shoulders = (pose.pixels[Landmark.LEFT_SHOULDER] + pose.pixels[Landmark.RIGHT_SHOULDER]) / 2
    radius = float(np.linalg.norm(points - hips, axis=1).max())
    up = (shoulders - hips) / max(float(np.linalg.norm(shoulders - hips)), 1e-9)
    circle_point = hips + radius * up
    return roi_from_keypoints(
        (hips[0] / width, hips[1] / height),
        (circle_point[0] / width, circle_point[1] / height),
        width,
        height,
    )
