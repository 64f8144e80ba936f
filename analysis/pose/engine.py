"""Top-down BlazePose: find the patient's box, then the 33 landmarks on that box, and make sure
it is still the patient.

Two small MediaPipe graphs (analysis.pose.graphs): a person
detector, run only on the first frame or when the person is lost, and the landmark model on a box
this module chooses. Choosing the box here (not inside MediaPipe's all-in-one pose graph) is what
lets the engine start on the largest, most central person and then keep following that person
when others walk into view. The landmark graph keeps MediaPipe's own landmark smoothing, which
also steadies the tracked box from frame to frame.

A box follows whatever body lies in it: two people standing close, it can slide from one to the
other. So the engine also keeps the person's identity (analysis.pose.identity):

    learning  their first ENROL_FRAMES frames teach their signature (the colours of torso and
              thighs). A frame where someone else is in view too (the person painted out, the
              detector finds another body) gives no pose and starts the learning again: who the
              patient is cannot be told ("uncertain"), and poses come again only once the person
              has been alone for ALONE_FRAMES frames in a row (the detector misses a neighbour
              now and then). A person handed over with `follow` (chosen outside the engine) is
              learnt even with others in view.
    following each frame's pose is compared with the signature. A pose that does not look like
              them is withheld ("uncertain"); after MISMATCH_FRAMES such frames in a row, a lost
              person, or a box that jumped, everyone in view is landmarked (one at a time, each
              painted out before the detector looks again) and only the one who matches is taken;
              nobody matching, or two matching equally, gives no pose ("uncertain").

Usage::

    with PoseEngine() as engine:
        result = engine.process(frame_bgr, timestamp_s)   # Pose or None
        engine.status   # IdentityStatus: None with "uncertain" is someone not told to be them
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.python._framework_bindings import resource_util

from analysis.pose.graphs import (
    DETECTOR_GRAPH,
    Graph,
    detect_boxes,
    image_packet,
    landmark_graph,
    landmarks_in_box,
)
from analysis.pose.identity import (
    MATCH_LIMIT,
    IdentityStatus,
    Signature,
    appearance,
    looks_like_another_person,
    paint_out,
    tell_apart,
)
from analysis.pose.models import require_models
from analysis.pose.roi import RegionOfInterest, center_distance, prominence
from analysis.pose.types import Pose

# Graph time between two frames of an engine without smoothing: long enough for every filter in
# MediaPipe's landmark graph to start afresh (int64 microseconds hold 1.5e11 such frames: years
# of a pose worker serving 1,000 frames a second).
UNRELATED_FRAMES_US = 60_000_000
# Frames in a row that do not look like the person before everyone in view is searched. On the
# dev set the person's own frames past the match limit come in runs of at most 2 (identity.py).
MISMATCH_FRAMES = 3
MAX_PEOPLE_SEARCHED = 3  # people landmarked in a search, nearest to where ours was first
# Frames alone in view, in a row, before poses come again once someone else was seen while
# learning: the detector misses a person standing close on single frames (1 frame of 200 on the
# lab clips); a longer wait costs the start of a clip that cuts to the patient alone (the dev
# set's DiyaMariaAbraham__bicep: with 8, its first curl was missed).
ALONE_FRAMES = 4
# A tracked box whose new pose lies this far from it (in box sizes), or this much larger or
# smaller, jumped to another body. Measured on the dev set's 27 clips, offline and live (15
# frames/s): one person's pose lay at most 0.08 box sizes from its tracked box, 0.90 to 1.14
# times its size; people side by side on the lab clips stand 0.37 box sizes apart or more.
JUMP_SHARE = 0.25
JUMP_SCALE = 1.3


@dataclass(frozen=True)
class Tracking:
    """Which person a stream follows: the box for its next frame (None: run the detector), where
    the person was last seen (to take them back after a loss), their signature (None: not
    learning yet), how sure the engine is that it follows them, how many frames in a row did not
    look like them, while learning how many frames alone are still needed after someone else
    was seen, and whether they were chosen outside the engine (`PoseEngine.follow`). A plain
    value, so that a stream's frames can be served by any engine, in any process."""

    next_box: RegionOfInterest | None = None
    last_seen: RegionOfInterest | None = None
    identity: Signature | None = None
    status: IdentityStatus = IdentityStatus.ENROLLING
    doubts: int = 0
    waiting: int = 0
    chosen: bool = False


@dataclass(frozen=True)
class _Frame:
    bgr: np.ndarray
    image: Any  # the graphs' image packet
    size: tuple[int, int]  # (width, height)
    timestamp_us: int


@dataclass(frozen=True)
class _Found:
    pose: Pose
    box: RegionOfInterest  # where it was found
    next_box: RegionOfInterest  # where to look on the next frame


class PoseEngine:
    """Follows one person through a stream of frames. Not thread-safe.

    `process` keeps the stream's Tracking itself (one engine per stream, as for a video file);
    `estimate` takes and returns it, for engines that serve many streams.
    """

    def __init__(self, *, smooth: bool = True, model_root: Path | None = None) -> None:
        resource_util.set_resource_dir(str(require_models(model_root)))
        self._smooth = smooth
        self._graph_time_us = 0
        self._detector = Graph(DETECTOR_GRAPH)
        self._landmarker = landmark_graph(smooth=self._smooth)
        # People other than the one followed are landmarked without smoothing, each on a frame
        # of its own: an engine without smoothing does that on its one graph already.
        self._searcher: Graph | None = None if smooth else self._landmarker
        self._tracking = Tracking()

    def __enter__(self) -> "PoseEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._detector.close()
        self._landmarker.close()
        if self._searcher is not None and self._searcher is not self._landmarker:
            self._searcher.close()

    def forget_person(self) -> None:
        """Start over: the next frame picks the most prominent person again."""
        self._tracking = Tracking()
        self._restart_smoothing()

    def follow(self, box: RegionOfInterest) -> None:
        """Follow the person in `box` from the next frame on (someone chosen outside the engine:
        the one exercising among several, analysis.people.choose_patient); their signature is
        learnt on the next frames even with others in view."""
        self.forget_person()
        self._tracking = Tracking(next_box=box, last_seen=box, chosen=True)

    def process(self, image_bgr: np.ndarray, timestamp_s: float) -> Pose | None:
        """Landmarks of the followed person in a BGR uint8 (H, W, 3) frame, or None if nobody is
        found (or nobody who can be told to be them). Timestamps are the frames' capture times;
        they drive the landmark smoothing."""
        result, self._tracking = self.estimate(image_bgr, timestamp_s, self._tracking)
        return result

    @property
    def status(self) -> IdentityStatus:
        """How sure the engine was, on the last frame `process` saw, that it follows its person."""
        return self._tracking.status

    def estimate(
        self, image_bgr: np.ndarray, timestamp_s: float, tracking: Tracking
    ) -> tuple[Pose | None, Tracking]:
        """One frame of a stream whose tracking state is kept by the caller."""
        height, width = image_bgr.shape[:2]
        timestamp_us = int(round(timestamp_s * 1e6)) if self._smooth else self._unrelated_frame_us()
        frame = _Frame(image_bgr, image_packet(image_bgr), (width, height), timestamp_us)
        signature = tracking.identity
        if signature is None or not signature.enrolled:
            return self._learn(frame, tracking)
        return self._follow(frame, tracking, signature)

    # --- learning who they are -------------------------------------------------------------------
    def _learn(self, frame: _Frame, tracking: Tracking) -> tuple[Pose | None, Tracking]:
        found = self._tracked(frame, tracking.next_box) or self._detected(frame, tracking)
        if found is None:
            # Lost while learning: what was learnt may be of whoever is found next, so it goes.
            lost = Tracking(last_seen=tracking.last_seen, waiting=tracking.waiting)
            return None, replace(lost, chosen=tracking.chosen)
        followed = Tracking(found.next_box, found.box, chosen=tracking.chosen)
        if not tracking.chosen and self._someone_else(frame, found.pose):
            # Whom to learn cannot be told: start again once they are alone in view.
            return None, replace(followed, status=IdentityStatus.UNCERTAIN, waiting=ALONE_FRAMES)
        signature = (tracking.identity or Signature()).learn(appearance(found.pose, frame.bgr))
        learnt = replace(followed, identity=signature, waiting=max(0, tracking.waiting - 1))
        if learnt.waiting > 0 and not signature.enrolled:
            return None, replace(learnt, status=IdentityStatus.UNCERTAIN)
        status = IdentityStatus.CONFIRMED if signature.enrolled else IdentityStatus.ENROLLING
        return found.pose, replace(learnt, status=status, waiting=0)

    def _someone_else(self, frame: _Frame, pose: Pose) -> bool:
        painted = paint_out(frame.bgr, pose)
        other = self._first_person(frame, image_packet(painted), None)
        return other is not None and looks_like_another_person(other.pose, pose, painted)

    # --- following them --------------------------------------------------------------------------
    def _follow(
        self, frame: _Frame, tracking: Tracking, signature: Signature
    ) -> tuple[Pose | None, Tracking]:
        found = self._tracked(frame, tracking.next_box)
        if found is not None and not jumped(found, frame.size):
            seen = appearance(found.pose, frame.bgr)
            distance = signature.distance(seen)
            if distance is None or distance < MATCH_LIMIT:
                learnt = signature.learn(seen)
                return found.pose, replace(
                    tracking,
                    next_box=found.next_box,
                    last_seen=found.box,
                    identity=learnt,
                    status=IdentityStatus.CONFIRMED,
                    doubts=0,
                )
            if tracking.doubts + 1 < MISMATCH_FRAMES:
                # Not like them (an arm across the torso, a turn, or someone else): withheld, and
                # looked at again on the next frame before anyone is searched for.
                return None, replace(
                    tracking,
                    next_box=found.next_box,
                    status=IdentityStatus.UNCERTAIN,
                    doubts=tracking.doubts + 1,
                )
        return self._search(frame, tracking, signature)

    def _search(
        self, frame: _Frame, tracking: Tracking, signature: Signature
    ) -> tuple[Pose | None, Tracking]:
        """Everyone in view landmarked; only the one who matches the signature is taken."""
        people = self._everyone(frame, tracking.last_seen)
        lost = replace(tracking, next_box=None, doubts=0)
        if not people:
            return None, replace(lost, status=IdentityStatus.CONFIRMED)  # nobody in view
        seen = [appearance(person.pose, frame.bgr) for person in people]
        chosen = tell_apart([signature.distance(each) for each in seen])
        if chosen is None:
            return None, replace(lost, status=IdentityStatus.UNCERTAIN)
        found = people[chosen]
        self._restart_smoothing()  # the smoothing's last frames may be of someone else
        return found.pose, replace(
            tracking,
            next_box=found.next_box,
            last_seen=found.box,
            identity=signature.learn(seen[chosen]),
            status=IdentityStatus.CONFIRMED,
            doubts=0,
        )

    def _everyone(self, frame: _Frame, last_seen: RegionOfInterest | None) -> list[_Found]:
        """The people in view, up to MAX_PEOPLE_SEARCHED: the detector's overlap suppression
        merges people who stand close into one box, so each person found is painted out before
        it looks again."""
        people: list[_Found] = []
        painted, image = frame.bgr, frame.image
        while len(people) < MAX_PEOPLE_SEARCHED:
            found = self._first_person(frame, image, last_seen)
            if found is None:
                break
            if people and not all(
                looks_like_another_person(found.pose, known.pose, painted) for known in people
            ):
                break  # the paint, or someone already found: nobody else is there
            people.append(found)
            painted = paint_out(painted, found.pose)
            image = image_packet(painted)
        return people

    # --- the graphs ------------------------------------------------------------------------------
    def _tracked(self, frame: _Frame, box: RegionOfInterest | None) -> _Found | None:
        """The person on the box from the previous frame's landmarks, with the smoothing."""
        if box is None:
            return None
        found = landmarks_in_box(
            self._landmarker, frame.image, box, frame.size, frame.timestamp_us, tracked=True
        )
        return None if found is None else _Found(found[0], box, found[1])

    def _detected(self, frame: _Frame, tracking: Tracking) -> _Found | None:
        """The detected person to start on (choose_person), on the smoothed graph."""
        boxes = detect_boxes(self._detector, frame.image, frame.size, frame.timestamp_us)
        box = choose_person(boxes, frame.size, tracking.last_seen)
        if box is None:
            return None
        found = landmarks_in_box(
            self._landmarker, frame.image, box, frame.size, frame.timestamp_us, tracked=False
        )
        return None if found is None else _Found(found[0], box, found[1])

    def _first_person(
        self, frame: _Frame, image: Any, last_seen: RegionOfInterest | None
    ) -> _Found | None:
        """The person the detector finds first in `image` (the frame, or the frame with people
        painted out), landmarked without smoothing as a frame of its own."""
        boxes = detect_boxes(self._detector, image, frame.size, frame.timestamp_us)
        box = choose_person(boxes, frame.size, last_seen)
        if box is None:
            return None
        if self._searcher is None:
            self._searcher = landmark_graph(smooth=False)
        found = landmarks_in_box(
            self._searcher, image, box, frame.size, self._unrelated_frame_us(), tracked=False
        )
        return None if found is None else _Found(found[0], box, found[1])

    def _restart_smoothing(self) -> None:
        """A fresh smoothed landmark graph: its filters must not carry another person's frames
        into the next ones. (Without smoothing, frames are unrelated already.)"""
        if not self._smooth:
            return
        self._landmarker.close()
        self._landmarker = landmark_graph(smooth=True)

    def _unrelated_frame_us(self) -> int:
        """A graph time for a frame unrelated to the last one (an engine without smoothing serves
        frames of many streams in turn). MediaPipe's landmark graph filters over time even with
        smoothing off: frames of one stream 67 ms after another's were pulled up to 58 % of the
        picture towards the other person's pose. Frames UNRELATED_FRAMES_US apart share nothing."""
        self._graph_time_us += UNRELATED_FRAMES_US
        return self._graph_time_us


def jumped(found: _Found, size: tuple[int, int]) -> bool:
    """Whether the pose found on a tracked box belongs to another body than the box was made
    for: its own box lies far from it, or is much larger or smaller."""
    box_px = found.box.pixel_size(size[0])
    if box_px <= 0:
        return True
    moved = center_distance(found.next_box, found.box, *size) / box_px
    scale = found.next_box.pixel_size(size[0]) / box_px
    return moved > JUMP_SHARE or not 1 / JUMP_SCALE <= scale <= JUMP_SCALE


def choose_person(
    boxes: list[RegionOfInterest], size: tuple[int, int], last_seen: RegionOfInterest | None
) -> RegionOfInterest | None:
    """The detected person to follow: the one nearest to where ours was last seen, if close
    enough (lost for a moment), else the largest, most central one."""
    if not boxes:
        return None
    if last_seen is not None:
        nearest = min(boxes, key=lambda box: center_distance(box, last_seen, *size))
        if center_distance(nearest, last_seen, *size) < 0.5 * last_seen.pixel_size(size[0]):
            return nearest
    return max(boxes, key=lambda box: prominence(box, *size))
