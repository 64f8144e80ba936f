"""Top-down BlazePose for every person in a recorded video, frame by frame.

The single-person engine (analysis.pose.engine) runs the detector only when it has lost its
person. Here the detector runs on every frame, and now and then (a sweep) also on overlapping
square tiles of the frame: BlazePose's detector sees the frame at 224x224 and finds a person by
the face, so in a 1088x1920 portrait it misses people smaller than about a third of the frame
and people whose face is blurred; on tiles it finds them. Each person already followed keeps a
*follower*: a landmark graph of its own, with MediaPipe's landmark smoothing, run on the box
predicted from that person's previous landmarks. A detection that no follower covers is
landmarked once on the detector's box, on a shared graph without smoothing (a probe); a pose found
there that is nobody's yet starts a new follower. Poses that lie on another's body are one body
seen twice: two followers that end on one person (one slid onto a neighbour), or a ghost (a leg
or a torso, alone in a tile, taken for a small person; a body taken for one twice its size). The
older follower is kept, a candidate on a found body is dropped.

Who is who over the whole video (ids through occlusions and crossings) is not decided here: a
follower ends when its person is lost, and the tracker in analysis.people matches poses to
identities.

Usage::

    with MultiPoseEngine() as engine:
        people = engine.process(frame_bgr, timestamp_s)   # list of PersonInFrame
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.python._framework_bindings import resource_util

from analysis.landmarks import Landmark
from analysis.pose.graphs import (
    DETECTOR_GRAPH,
    UNRELATED_FRAMES_US,
    Graph,
    detect_boxes,
    image_packet,
    landmark_graph,
    landmarks_in_box,
)
from analysis.pose.models import require_models
from analysis.pose.roi import BOX_MARGIN, RegionOfInterest
from analysis.pose.types import Pose

# Followers (smoothed landmark graphs) alive at once; a person beyond this many in one frame is
# not followed. Each graph holds its own copy of the landmark model.
MAX_PEOPLE = 8
# A sweep every this many seconds: the tiles cost ~20 detector runs on a portrait frame, and
# people already followed need none; only people the whole-frame detector misses wait for one.
SWEEP_EVERY_S = 0.5
# Tile sides, as fractions of the frame's short side: a person a sixth of a portrait frame's
# height fills a half-side tile enough for the detector.
SWEEP_TILE_SCALES = (1.0, 0.5)
# A detection is a followed person's when its hip centre lies within this fraction of the
# smaller of the two boxes from that person's hips (boxes are 1.25x the body's circle).
COVERED_FRACTION = 0.25
# A pose lies on another's body when this share of its body keypoints lies within LIMB_RADIUS
# of the other's limbs or TRUNK_RADIUS of its trunk lines (sides and diagonals), in body heights:
# a limb is about a tenth of the height across, the trunk a quarter. People side by side, even
# with arms crossing, share a few keypoints at most.
PART_OF_SHARE = 0.75
LIMB_RADIUS = 0.08
TRUNK_RADIUS = 0.12
LIMBS = (
    (Landmark.LEFT_SHOULDER, Landmark.LEFT_ELBOW),
    (Landmark.LEFT_ELBOW, Landmark.LEFT_WRIST),
    (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_ELBOW),
    (Landmark.RIGHT_ELBOW, Landmark.RIGHT_WRIST),
    (Landmark.LEFT_HIP, Landmark.LEFT_KNEE),
    (Landmark.LEFT_KNEE, Landmark.LEFT_ANKLE),
    (Landmark.RIGHT_HIP, Landmark.RIGHT_KNEE),
    (Landmark.RIGHT_KNEE, Landmark.RIGHT_ANKLE),
)
TRUNK = (
    (Landmark.LEFT_SHOULDER, Landmark.LEFT_HIP),
    (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_HIP),
    (Landmark.LEFT_SHOULDER, Landmark.RIGHT_HIP),
    (Landmark.RIGHT_SHOULDER, Landmark.LEFT_HIP),
)
BODY_POINTS = (
    Landmark.LEFT_SHOULDER,
    Landmark.RIGHT_SHOULDER,
    Landmark.LEFT_ELBOW,
    Landmark.RIGHT_ELBOW,
    Landmark.LEFT_WRIST,
    Landmark.RIGHT_WRIST,
    Landmark.LEFT_HIP,
    Landmark.RIGHT_HIP,
    Landmark.LEFT_KNEE,
    Landmark.RIGHT_KNEE,
    Landmark.LEFT_ANKLE,
    Landmark.RIGHT_ANKLE,
)


@dataclass(frozen=True)
class PersonInFrame:
    """One person's pose in one frame. `box` is the box the landmarks were found in (its size is
    the person's scale in pixels: `box.pixel_size(width)`); `follower` numbers the follower that
    found it, the same number while the engine follows that body without a loss."""

    pose: Pose
    box: RegionOfInterest
    follower: int


class _Follower:
    """One followed person: a smoothed landmark graph and the box for the next frame."""

    def __init__(self, number: int, next_box: RegionOfInterest) -> None:
        self.number = number
        self.next_box = next_box
        self.graph = landmark_graph(smooth=True)

    def close(self) -> None:
        self.graph.close()


class MultiPoseEngine:
    """Finds every person in each frame of one video. Not thread-safe; one engine per video."""

    def __init__(self, *, max_people: int = MAX_PEOPLE, model_root: Path | None = None) -> None:
        resource_util.set_resource_dir(str(require_models(model_root)))
        self._max_people = max_people
        self._detector = Graph(DETECTOR_GRAPH)
        self._probe_graph = landmark_graph(smooth=False)
        self._probe_time_us = 0
        self._followers: list[_Follower] = []
        self._next_number = 1
        self._last_sweep_s: float | None = None

    def __enter__(self) -> "MultiPoseEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for follower in self._followers:
            follower.close()
        self._followers = []
        self._detector.close()
        self._probe_graph.close()

    @property
    def followed(self) -> int:
        """How many people the engine follows now (one landmark graph each)."""
        return len(self._followers)

    def process(self, image_bgr: np.ndarray, timestamp_s: float) -> list[PersonInFrame]:
        """Every person found in a BGR uint8 (H, W, 3) frame. Timestamps are the frames' capture
        times, increasing; they drive each follower's landmark smoothing and the sweeps."""
        height, width = image_bgr.shape[:2]
        size = (width, height)
        timestamp_us = int(round(timestamp_s * 1e6))
        image = image_packet(image_bgr)
        boxes = detect_boxes(self._detector, image, size, timestamp_us)
        if self._sweep_due(timestamp_s):
            boxes += self._sweep(image_bgr, timestamp_us)
        people = self._drop_doubles(self._follow(image, size, timestamp_us), width)
        return people + self._new_people(image, boxes, size, people)

    def _sweep_due(self, timestamp_s: float) -> bool:
        if self._last_sweep_s is not None and timestamp_s - self._last_sweep_s < SWEEP_EVERY_S:
            return False
        self._last_sweep_s = timestamp_s
        return True

    def _sweep(self, image_bgr: np.ndarray, timestamp_us: int) -> list[RegionOfInterest]:
        """The detector's boxes on every tile of the frame, in the frame's coordinates."""
        height, width = image_bgr.shape[:2]
        boxes = []
        for tile in sweep_tiles(width, height):
            x0, y0, side = tile
            crop = np.ascontiguousarray(image_bgr[y0 : y0 + side, x0 : x0 + side])
            found = detect_boxes(self._detector, image_packet(crop), (side, side), timestamp_us)
            boxes += [box_in_frame(box, tile, width, height) for box in found]
        return boxes

    def _new_people(
        self,
        image: Any,
        boxes: list[RegionOfInterest],
        size: tuple[int, int],
        people: list[PersonInFrame],
    ) -> list[PersonInFrame]:
        """The people on detector boxes that no follower covers, each starting a follower. Every
        pose probed counts as covering the boxes around it, so that one person found in several
        tiles is probed once."""
        new: list[PersonInFrame] = []
        probed = list(people)
        for box in boxes:
            if len(self._followers) >= self._max_people:
                break
            if covered(box, probed, size):
                continue
            found = self._probe(image, box, size)
            if found is None:
                continue
            person, next_box = found
            probed.append(person)
            if not any(one_body(person, other, size[0]) for other in people + new):
                self._followers.append(_Follower(person.follower, next_box))
                self._next_number += 1
                new.append(person)
        return new

    def _follow(self, image: Any, size: tuple[int, int], timestamp_us: int) -> list[PersonInFrame]:
        """Each follower's person on its predicted box; followers whose person is gone end."""
        people = []
        for follower in list(self._followers):
            found = landmarks_in_box(
                follower.graph, image, follower.next_box, size, timestamp_us, tracked=True
            )
            if found is None:
                self._end(follower)
                continue
            pose, next_box = found
            people.append(PersonInFrame(pose=pose, box=follower.next_box, follower=follower.number))
            follower.next_box = next_box
        return people

    def _drop_doubles(self, people: list[PersonInFrame], width: int) -> list[PersonInFrame]:
        """Ends the younger of two followers on one body (older followers come first: they were
        started first). The older has been a person for longer; the younger is often a ghost
        that grew out of part of that body."""
        kept: list[PersonInFrame] = []
        for person in people:
            if any(one_body(person, other, width) for other in kept):
                self._end(self._follower(person.follower))
            else:
                kept.append(person)
        return kept

    def _probe(
        self, image: Any, box: RegionOfInterest, size: tuple[int, int]
    ) -> tuple[PersonInFrame, RegionOfInterest] | None:
        """The landmarks on a detector box, as the next follower's, and the box for its next
        frame; None when the landmark model finds nobody there."""
        # The probe serves unrelated boxes: each run far from the last, so no filter carries over.
        self._probe_time_us += UNRELATED_FRAMES_US
        found = landmarks_in_box(
            self._probe_graph, image, box, size, self._probe_time_us, tracked=False
        )
        if found is None:
            return None
        pose, next_box = found
        return PersonInFrame(pose=pose, box=box, follower=self._next_number), next_box

    def _follower(self, number: int) -> _Follower:
        return next(follower for follower in self._followers if follower.number == number)

    def _end(self, follower: _Follower) -> None:
        follower.close()
        self._followers.remove(follower)


def hip_center_px(pose: Pose) -> np.ndarray:
    """The midpoint of the two hip landmarks, in pixels."""
    return (pose.pixels[Landmark.LEFT_HIP] + pose.pixels[Landmark.RIGHT_HIP]) / 2


def covered(box: RegionOfInterest, people: list[PersonInFrame], size: tuple[int, int]) -> bool:
    """Whether a detection is one of `people`. Detector boxes are centred on the hips, like the
    boxes made from landmarks, so a box is a person's whose hips lie near its centre; the smaller
    box sets "near", so a small person behind a large one stays apart."""
    width, height = size
    center = box.center_px(width, height)
    return any(
        math.dist(center, hip_center_px(person.pose))
        < COVERED_FRACTION * min(box.pixel_size(width), person.box.pixel_size(width))
        for person in people
    )


def sweep_tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """The squares (left, top, side) a sweep runs the detector on: at each of SWEEP_TILE_SCALES
    of the frame's short side, overlapping by half, the last one flush with the far edges."""
    tiles = []
    for scale in SWEEP_TILE_SCALES:
        side = int(min(width, height) * scale)
        for top in _tile_starts(height, side):
            tiles += [(left, top, side) for left in _tile_starts(width, side)]
    return tiles


def _tile_starts(length: int, side: int) -> list[int]:
    starts = list(range(0, length - side + 1, max(side // 2, 1)))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def box_in_frame(
    box: RegionOfInterest, tile: tuple[int, int, int], width: int, height: int
) -> RegionOfInterest:
    """A box found in a tile, normalised to the whole frame."""
    left, top, side = tile
    return RegionOfInterest(
        x_center=(left + box.x_center * side) / width,
        y_center=(top + box.y_center * side) / height,
        width=box.width * side / width,
        height=box.height * side / height,
        rotation=box.rotation,
    )


def part_of(part: PersonInFrame, whole: PersonInFrame, width: int) -> bool:
    """Whether a pose lies on another's body: PART_OF_SHARE of its body keypoints within reach
    of the other's limbs and trunk."""
    height_px = whole.box.pixel_size(width) / BOX_MARGIN
    points = part.pose.pixels[list(BODY_POINTS)]
    limbs = _distance_to_segments(points, whole.pose.pixels, LIMBS) < LIMB_RADIUS * height_px
    trunk = _distance_to_segments(points, whole.pose.pixels, TRUNK) < TRUNK_RADIUS * height_px
    return bool((limbs | trunk).mean() >= PART_OF_SHARE)


def one_body(a: PersonInFrame, b: PersonInFrame, width: int) -> bool:
    """Whether two poses are of one body: either lies on the other."""
    return part_of(a, b, width) or part_of(b, a, width)


def _distance_to_segments(
    points: np.ndarray, pixels: np.ndarray, segments: tuple[tuple[Landmark, Landmark], ...]
) -> np.ndarray:
    """(N,) distance from each point to the nearest of the segments between landmarks."""
    starts = pixels[[a for a, _ in segments]]  # (S, 2)
    ends = pixels[[b for _, b in segments]]
    direction = ends - starts
    length_sq = np.maximum((direction**2).sum(axis=1), 1e-9)
    along = ((points[:, None, :] - starts[None]) * direction[None]).sum(axis=2) / length_sq
    nearest = starts[None] + np.clip(along, 0, 1)[..., None] * direction[None]
    return np.linalg.norm(points[:, None, :] - nearest, axis=2).min(axis=1)
