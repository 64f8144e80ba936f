"""One person's pose in one frame, and the messages that carry it between a live session and a pose
worker.

The pose engine (analysis.pose.engine) makes a Pose; a pose worker (analysis.pose.worker) sends it
as a PoseWire dict inside its PoseAnswer; the consumer (sessions.consumers) turns that back into a
Pose (pose_from_wire) for the live tracker (analysis.tracker). The messages are plain dicts of
JSON-able values (plus the frame bytes), ready for a channel layer or a process pool; their keys
are the protocol between web and worker processes. This module sits below all of those and
imports only numpy.
"""

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

import numpy as np


class PoseWire(TypedDict):
    """A Pose on its way from a worker, rounded to what the landmarks are worth."""

    image_xyz: list[list[float]]  # (33, 3) x, y normalised to width/height, z the depth; 5 places
    world_xyz: list[list[float]]  # (33, 3) metres; 4 places
    visibility: list[float]  # (33,); 3 places
    image_size: list[int]  # [width, height] in pixels


@dataclass(frozen=True)
class Pose:
    """One person's pose in one frame: the 33 BlazePose landmarks (analysis.landmarks).

    pixels: (33, 2) positions in the image, in pixels.
    world: (33, 3) metres, origin between the hips, y pointing down.
    visibility: (33,) likelihood in [0, 1] that the landmark is visible in the image.
    image_size: (width, height) of the frame in pixels.
    depth: (33,) the model's relative depth in the image (the scale of x normalised to the image
        width, smaller is nearer the camera, hips at 0); None for a pose made without a model
        (sent as 0).
    tracked: the engine found the person on the box from the previous frame's landmarks (False:
        on the detector's box, or not known: the wire does not carry it).
    """

    pixels: np.ndarray
    world: np.ndarray
    visibility: np.ndarray
    image_size: tuple[int, int]
    depth: np.ndarray | None = None
    tracked: bool = False

    def to_wire(self) -> PoseWire:
        width, height = self.image_size
        normalised = self.pixels / np.array([width, height], dtype=np.float64)
        depth = np.zeros(len(self.pixels)) if self.depth is None else self.depth
        return {
            "image_xyz": np.column_stack([normalised, depth]).round(5).tolist(),
            "world_xyz": self.world.round(4).tolist(),
            "visibility": self.visibility.round(3).tolist(),
            "image_size": [width, height],
        }


def pose_from_wire(data: PoseWire | None) -> Pose | None:
    """The Pose a worker sent (None: nobody was found in the frame)."""
    if data is None:
        return None
    width, height = data["image_size"]
    image_xyz = np.asarray(data["image_xyz"], dtype=float)
    return Pose(
        pixels=image_xyz[:, :2] * np.array([width, height]),
        world=np.asarray(data["world_xyz"], dtype=float),
        visibility=np.asarray(data["visibility"], dtype=float),
        image_size=(int(width), int(height)),
        depth=image_xyz[:, 2],
    )


class BoxWire(TypedDict):
    """A person box (analysis.pose.roi.RegionOfInterest)."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float


# Whether the person a stream follows is the one it started on (analysis.pose.identity), the
# PoseAnswer's `identity`:
#   "enrolling"  the engine is learning who they are (their first frames alone in view, torso
#                seen); a pose is theirs as far as it knows
#   "confirmed"  the pose matches the person learnt; no pose: nobody is in view
#   "uncertain"  no pose, so that nothing is measured on someone else: the person in view does not
#                look like the one learnt (withheld, even for a frame or two), nobody in view
#                matches, two match about equally, or, before anyone was learnt, someone else is
#                in view too
IdentityState = Literal["enrolling", "confirmed", "uncertain"]


class IdentityWire(TypedDict):
    """A person's signature (analysis.pose.identity.Signature): the colour histograms of their
    torso and thighs (28 shares each, or empty: not learnt) and how many frames each was learnt
    from."""

    torso: list[float]
    thighs: list[float]
    torso_frames: int
    thigh_frames: int


class TrackingWire(TypedDict):
    """A stream's tracking state (analysis.pose.engine.Tracking); it travels with every frame.
    The keys after `last_seen` may be missing (a state from before they existed): no signature,
    learning starts afresh."""

    next_box: BoxWire | None
    last_seen: BoxWire | None
    identity: NotRequired[IdentityWire | None]
    status: NotRequired[IdentityState]
    doubts: NotRequired[int]  # frames in a row that did not look like the person
    waiting: NotRequired[int]  # frames alone still needed after someone else was seen
    chosen: NotRequired[bool]  # the person was chosen outside the engine (PoseEngine.follow)


class PoseRequest(TypedDict):
    """A consumer to the pose workers, on the channel layer's shared request channel."""

    type: Literal["pose.request"]
    id: int
    reply_to: str  # the consumer's own channel
    frame: bytes
    t: float  # seconds, the stream's clock
    tracking: TrackingWire | None
    expires: float  # wall clock (time.time()): a worker skips the request after this
    sent: float  # wall clock when it entered the channel: the workers' queue-wait metric


class PoseAnswer(TypedDict, total=False):
    """A worker's answer to one frame: either `pose` (None: nobody found, or nobody who is the
    followed person), `tracking` and `identity` (IdentityState: "uncertain" means the pose was
    withheld because the person in view could not be told to be the followed one), or `error` (a
    code) and `message` (for the patient)."""

    pose: PoseWire | None
    tracking: TrackingWire
    identity: IdentityState
    error: str
    message: str


class PoseReply(TypedDict):
    """A worker back to the consumer that asked (its ``pose.result`` handler)."""

    type: Literal["pose.result"]
    id: int
    answer: PoseAnswer
