"""Top-down BlazePose: find the patient's box, then the 33 landmarks on that box, and make sure
it is still the patient.

Two models: a person detector, run only on the first frame or when the person is lost, and the
landmark model on a box this module chooses. Choosing the box here (not inside MediaPipe's
all-in-one pose graph) is what lets the engine start on the largest, most central person and then
keep following that person when others walk into view. A backend runs the two models, by the
engine's `runtime`:

    mediapipe  MediaPipe's graphs (analysis.pose.graphs GraphBackend), the default. Only they
               smooth the landmarks (MediaPipe's own filter, which also steadies the tracked box
               from frame to frame): offline analysis (analysis.video) runs them smoothed.
    litert     the same .tflite models run directly by Google's LiteRT, with MediaPipe's pre- and
               post-processing in numpy (analysis.pose.blazepose DirectBackend): faster on one
               core, the same landmarks to a few pixels (bench/pose_runtime.py). Never smoothed:
               for live pose workers, whose streams the tracker smooths (docs/architecture.md).

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

    with PoseEngine() as engine:          # or PoseEngine(smooth=False, runtime="litert")
        result = engine.process(frame_bgr, timestamp_s)   # Pose or None
        engine.status   # IdentityStatus: None with "uncertain" is someone not told to be them
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from analysis.pose.blazepose import DirectBackend
from analysis.pose.graphs import GraphBackend
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
from analysis.pose.runtimes import litert_blazepose
from analysis.pose.types import Pose

RUNTIMES = ("mediapipe", "litert")  # what runs the two models: see the module's docstring
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


class PoseBackend(Protocol):
    """The two models as the engine calls them, on BGR uint8 images: a frame, or a frame with
    people painted out. Whatever carries over between calls (clocks, smoothing) is the backend's."""

    def start_frame(self, timestamp_s: float) -> None:
        """The calls until the next one are on the frame captured at `timestamp_s`."""

    def detect(self, image_bgr: np.ndarray) -> list[RegionOfInterest]:
        """One box per person the detector finds."""

    def landmarks(
        self,
        image_bgr: np.ndarray,
        box: RegionOfInterest,
        *,
        tracked: bool,
        searched: bool = False,
    ) -> tuple[Pose, RegionOfInterest] | None:
        """The pose of the person in `box` and the box to look in on the next frame, or None when
        the model finds nobody there. `searched`: a person looked for among everyone in view,
        landmarked as a frame of its own (never smoothed)."""

    def restart(self) -> None:
        """The person followed may have changed: nothing of the earlier frames may carry over."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Frame:
    bgr: np.ndarray
    size: tuple[int, int]  # (width, height)


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

    def __init__(
        self, *, smooth: bool = True, runtime: str = "mediapipe", model_root: Path | None = None
    ) -> None:
        self._backend = _backend(runtime, smooth=smooth, model_root=require_models(model_root))
        self._tracking = Tracking()

    def __enter__(self) -> "PoseEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    def forget_person(self) -> None:
        """Start over: the next frame picks the most prominent person again."""
        self._tracking = Tracking()
        self._backend.restart()

    def follow(self, box: RegionOfInterest) -> None:
        """Follow the person in `box` from the next frame on (someone chosen outside the engine:
        the one exercising among several, analysis.people.choose_patient); their signature is
        learnt on the next frames even with others in view."""
        self.forget_person()
        self._tracking = Tracking(next_box=box, last_seen=box, chosen=True)

    def process(self, image_bgr: np.ndarray, timestamp_s: float) -> Pose | None:
        """Landmarks of the followed person in a BGR uint8 (H, W, 3) frame, or None if nobody is
        found (or nobody who can be told to be them). Timestamps are the frames' capture times;
        they drive the landmark smoothing (MediaPipe's graphs with `smooth`)."""
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
        self._backend.start_frame(timestamp_s)
        frame = _Frame(image_bgr, (width, height))
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
        other = self._first_person(painted, None)
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
        self._backend.restart()  # the smoothing's last frames may be of someone else
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
        painted = frame.bgr
        while len(people) < MAX_PEOPLE_SEARCHED:
            found = self._first_person(painted, last_seen)
            if found is None:
                break
            if people and not all(
                looks_like_another_person(found.pose, known.pose, painted) for known in people
            ):
                break  # the paint, or someone already found: nobody else is there
            people.append(found)
            painted = paint_out(painted, found.pose)
        return people

    # --- the models ------------------------------------------------------------------------------
    def _tracked(self, frame: _Frame, box: RegionOfInterest | None) -> _Found | None:
        """The person on the box from the previous frame's landmarks (smoothed, if smoothing)."""
        if box is None:
            return None
        return self._landmarked(frame.bgr, box, tracked=True)

    def _detected(self, frame: _Frame, tracking: Tracking) -> _Found | None:
        """The detected person to start on (choose_person), landmarked as the person followed."""
        box = choose_person(self._backend.detect(frame.bgr), frame.size, tracking.last_seen)
        if box is None:
            return None
        return self._landmarked(frame.bgr, box, tracked=False)

    def _first_person(
        self, image_bgr: np.ndarray, last_seen: RegionOfInterest | None
    ) -> _Found | None:
        """The person the detector finds first in `image_bgr` (the frame, or the frame with
        people painted out), landmarked without smoothing as a frame of its own."""
        size = (image_bgr.shape[1], image_bgr.shape[0])
        box = choose_person(self._backend.detect(image_bgr), size, last_seen)
        if box is None:
            return None
        return self._landmarked(image_bgr, box, tracked=False, searched=True)

    def _landmarked(
        self, image_bgr: np.ndarray, box: RegionOfInterest, *, tracked: bool, searched: bool = False
    ) -> _Found | None:
        found = self._backend.landmarks(image_bgr, box, tracked=tracked, searched=searched)
        return None if found is None else _Found(found[0], box, found[1])


def _backend(runtime: str, *, smooth: bool, model_root: Path) -> PoseBackend:
    """The backend of `runtime` (one of RUNTIMES). Only MediaPipe's graphs smooth."""
    if runtime == "mediapipe":
        return GraphBackend(smooth=smooth, model_root=model_root)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown pose runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    if smooth:
        raise ValueError(
            f"the {runtime} runtime does not smooth landmarks: use smooth=False, or the "
            "mediapipe runtime for smoothed landmarks"
        )
    return DirectBackend(litert_blazepose(model_root))


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
