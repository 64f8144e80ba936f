"""Who the followed person is: a signature learnt on their first frames and checked on every
later one, and how to tell whether someone else is in view.

**The signature** is the colour of the person's clothes (or skin) where they are least often
covered: a band along the torso's axis and one along each thigh, the arms, hands and head
painted out of them. Each is a coarse hue-saturation histogram with a few brightness bins for
grey, black and white cloth (which have no hue), soft-binned so that a colour on a bin's edge does
not jump between bins. The bands are a share of the segment's length wide, so that a person seen
from the side still gives them; a torso that points at the camera (a push-up seen from the front)
gives none. It does not depend on where the person stands or how large they are in the picture.
It is learnt as the mean over the first ENROL_FRAMES frames that show the torso, and afterwards
follows slow changes (light, turning) on frames that match it closely.

`Signature.distance` compares a frame with it: the Hellinger distance of each band's histogram,
averaged over the bands seen in both (0 the same colours, 1 none in common; None: nothing seen).

Measured on the dev set's 27 single-person clips and the two real two-person lab recordings
(pose2sim, the man and the woman each followed on their own):
- the same person against their own signature, every frame the engine followed them after
  learning: offline (full resolution, 18,619 frames) median 0.06, 99th percentile 0.40, 99.9th
  0.76; live (640x480 JPEG at 15 frames/s, 8,452 frames) median 0.07, 99th percentile 0.40.
  At or above MATCH_LIMIT: 49 and 34 frames, all but 4 and 3 in kanatovaai__3, a close-up whose
  landmarks are scattered over the wall; elsewhere in runs of at most 2 frames. Pose2sim: at
  most 0.44.
- different people, one clip's signature against another clip's frames (clips of different
  sources, 21,756 frames; cameras and light differ too): median 0.82, 1st percentile 0.32, 5th
  0.47. Pose2sim, the man against the woman in the same recording: 0.76 at least.
So MATCH_LIMIT = 0.5: a person is taken for themselves unless the colours differ clearly. People
dressed alike are not told apart (6 % of the cross-clip frames fall below the limit); two
candidates that both match are "cannot tell" (TELL_APART_MARGIN). Following slow changes
(ADAPT_RATE on frames closer than ADAPT_BELOW) took the same-person frames at or above the limit
from 165 to 65 in a first measurement on the dev set's offline poses.

Body proportions (shoulder and hip width, upper arm, forearm, thigh, shank and torso as shares
of their sum, from the world landmarks) were measured as a second cue and left out: BlazePose
draws them towards one standard body, so that different people differ less than one person
between frames (RMS log-share difference: same person median 0.05, 99th percentile 0.19;
different people median 0.09, 5th percentile 0.04).

**Someone else in view**: the followed person's body painted out of the frame (`paint_out`) and
the detector run again; what it finds there is another person when the landmark model sees a
body there (`looks_like_another_person`). Without the painting, the detector's overlap
suppression merges two people standing close into one box between them.

A signature is a plain value that travels with every frame between processes
(`signature_to_wire`, `signature_from_wire`): about 400 characters of JSON.
"""

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

from analysis.pose.types import IdentityWire, Pose


class IdentityStatus(StrEnum):
    """How sure the engine is that it follows the person it started on (the values are
    analysis.pose.types.IdentityState)."""

    ENROLLING = "enrolling"  # still learning who they are: a pose is theirs as far as it knows
    CONFIRMED = "confirmed"  # the pose is theirs; no pose: nobody is in view
    UNCERTAIN = "uncertain"  # someone is in view who cannot be told to be them: no pose


ENROL_FRAMES = 8  # frames showing the torso, alone in view, that make a signature
MATCH_LIMIT = 0.5  # a distance at or above it: someone else (see the module docstring)
TELL_APART_MARGIN = 0.15  # a match must beat the next one by this to be told apart from it
ADAPT_BELOW = 0.3  # frames this close teach the signature slow changes...
ADAPT_RATE = 0.03  # ... this much each

VISIBLE = 0.5  # landmarks at least this visible delimit the bands
BAND_SPAN = (0.15, 0.85)  # of the segment, from its lower end to its upper end
TORSO_BAND_WIDTH = 0.4  # of the torso's length in the picture: inside the body, front or side on
THIGH_BAND_WIDTH = 0.3  # of the thigh's length
ARM_WIDTH = 0.25  # of the torso's length: arms and hands painted out of the bands
HEAD_RADIUS = 0.35  # of the torso's length
TORSO_MIN_IN_PLANE = 0.6  # share of the torso's length across the picture (world landmarks)
MIN_BAND_PIXELS = 150  # fewer: the band is not seen well enough
# Histogram: HUE_BINS x SAT_BINS colour bins and GREY_BINS brightness bins for grey cloth; a pixel
# goes from grey to coloured as its saturation and brightness go through CHROMA_RAMP.
HUE_BINS, SAT_BINS, GREY_BINS = 8, 3, 4
COLOUR_BINS = HUE_BINS * SAT_BINS + GREY_BINS
CHROMA_RAMP = (25.0, 60.0)

# Painting a person out: limbs as lines this share of the torso's length thick, the head a disc.
PAINT = (128, 128, 128)
PAINT_LIMB_WIDTH = 0.35
PAINT_HAND_RADIUS = 0.2
PAINT_HEAD_RADIUS = 0.55
# Another person. Measured on pose2sim, each of the man and the woman painted out in turn: the
# other one is found in 199 of 200 frames, their hips 0.46 or more of the followed one's size
# away, 0.48 of their size or more, 67 % or more of their landmarks visible, at most 46 % of
# their torso on paint (his arms and legs cross her). On the dev set's single-person clips, what
# the detector finds on a painted frame is mostly the paint itself (torso 75-100 % painted);
# these rules still take a few frames of clutter, a poster or a mural for a person.
OTHER_MIN_SEPARATION = 0.4  # hip centres apart, in the followed person's size
OTHER_MIN_SIZE = 0.45  # of the followed person's size: someone who could be taken for them
OTHER_MIN_VISIBLE = 0.6  # share of landmarks visible
OTHER_MAX_PAINTED = 0.6  # share of the torso on painted pixels: the detector saw the paint

_SHOULDERS, _HIPS = [11, 12], [23, 24]
_THIGHS = ((23, 25), (24, 26))
_ARM_SEGMENTS = ((11, 13), (13, 15), (12, 14), (14, 16))
_HANDS = (15, 16, 17, 18, 19, 20, 21, 22)
_PAINTED_SEGMENTS = (
    *_ARM_SEGMENTS,
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32),
    (11, 12), (23, 24), (11, 23), (12, 24),
)  # fmt: skip
_FEET = (29, 30, 31, 32)
_HEAD = [0, 7, 8]  # nose and ears


# --- what a frame shows of a person ------------------------------------------------------------
@dataclass(frozen=True)
class Appearance:
    """The colour histograms of a person's torso and thighs in one frame (None: not seen)."""

    torso: np.ndarray | None
    thighs: np.ndarray | None


def appearance(pose: Pose, image_bgr: np.ndarray) -> Appearance:
    return Appearance(torso_colours(pose, image_bgr), thigh_colours(pose, image_bgr))


def torso_colours(pose: Pose, image_bgr: np.ndarray) -> np.ndarray | None:
    if (pose.visibility[_SHOULDERS + _HIPS] < VISIBLE).any():
        return None
    axis_world = pose.world[_SHOULDERS].mean(axis=0) - pose.world[_HIPS].mean(axis=0)
    if np.hypot(*axis_world[:2]) < TORSO_MIN_IN_PLANE * np.linalg.norm(axis_world):
        return None  # pointing at the camera: foreshortened, the band would cover head and arms
    hips, shoulders = _torso_ends(pose)
    return _band_colours(image_bgr, pose, [_band(hips, shoulders, TORSO_BAND_WIDTH)])


def thigh_colours(pose: Pose, image_bgr: np.ndarray) -> np.ndarray | None:
    bands = [
        _band(pose.pixels[knee], pose.pixels[hip], THIGH_BAND_WIDTH)
        for hip, knee in _THIGHS
        if min(pose.visibility[hip], pose.visibility[knee]) >= VISIBLE
    ]
    return _band_colours(image_bgr, pose, bands) if bands else None


def _torso_ends(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """The centres of the hips and of the shoulders, in pixels."""
    return pose.pixels[_HIPS].mean(axis=0), pose.pixels[_SHOULDERS].mean(axis=0)


def _torso_px(pose: Pose) -> float:
    hips, shoulders = _torso_ends(pose)
    return float(np.linalg.norm(shoulders - hips))


def _band(low: np.ndarray, high: np.ndarray, width_share: float) -> np.ndarray:
    """The four corners of a band along the segment from `low` to `high`."""
    axis = high - low
    across = np.array([-axis[1], axis[0]]) * width_share / 2
    start, end = (low + share * axis for share in BAND_SPAN)
    return np.array([start - across, start + across, end + across, end - across])


def _band_colours(image_bgr: np.ndarray, pose: Pose, bands: list[np.ndarray]) -> np.ndarray | None:
    """The histogram of the pixels inside the bands, arms, hands and head left out."""
    height, width = image_bgr.shape[:2]
    corners = np.concatenate(bands)
    if not np.isfinite(corners).all():
        return None
    left, top = np.floor(corners.min(axis=0)).astype(int).clip(0, [width, height])
    right, bottom = np.ceil(corners.max(axis=0)).astype(int).clip(0, [width, height])
    if right - left < 2 or bottom - top < 2:
        return None
    origin = np.array([left, top])
    mask = np.zeros((bottom - top, right - left), dtype=np.uint8)
    for band in bands:
        cv2.fillConvexPoly(mask, np.round(band - origin).astype(np.int32), (1,))
    _draw_limbs(mask, pose.pixels - origin, _torso_px(pose), 0, ARM_WIDTH, ARM_WIDTH, HEAD_RADIUS)
    hsv = cv2.cvtColor(image_bgr[top:bottom, left:right], cv2.COLOR_BGR2HSV)[mask > 0]
    return colour_histogram(hsv) if len(hsv) >= MIN_BAND_PIXELS else None


def _draw_limbs(
    canvas: np.ndarray,
    pixels: np.ndarray,
    torso_px: float,
    colour: Any,
    limb_width: float,
    hand_radius: float,
    head_radius: float,
    segments: tuple[tuple[int, int], ...] = _ARM_SEGMENTS,
    ends: tuple[int, ...] = _HANDS,
) -> None:
    """Draw the arms (or the given segments), hands (or the given ends) and head over `canvas`,
    sized by the torso's length in pixels."""
    points = [(int(round(x)), int(round(y))) for x, y in pixels]
    thickness = max(2, int(round(limb_width * torso_px)))
    for a, b in segments:
        cv2.line(canvas, points[a], points[b], colour, thickness)
    for end in ends:
        cv2.circle(canvas, points[end], max(1, int(round(hand_radius * torso_px))), colour, -1)
    head = pixels[_HEAD].mean(axis=0)
    centre = (int(round(head[0])), int(round(head[1])))
    cv2.circle(canvas, centre, max(1, int(round(head_radius * torso_px))), colour, -1)


def colour_histogram(hsv: np.ndarray) -> np.ndarray:
    """(N, 3) OpenCV HSV pixels (hue 0-179) -> COLOUR_BINS shares summing to 1."""
    hue, saturation, value = (hsv[:, i].astype(np.float64) for i in range(3))
    chroma = _ramp(saturation) * _ramp(value)
    saturation_position = (saturation - CHROMA_RAMP[0]).clip(0) / (256 - CHROMA_RAMP[0])
    counts = np.zeros(COLOUR_BINS)
    for hue_bin, hue_weight in _soft_bins(hue / 180 * HUE_BINS, HUE_BINS, circular=True):
        for sat_bin, sat_weight in _soft_bins(saturation_position * SAT_BINS, SAT_BINS):
            weights = chroma * hue_weight * sat_weight
            counts += np.bincount(hue_bin * SAT_BINS + sat_bin, weights, COLOUR_BINS)
    for grey_bin, grey_weight in _soft_bins(value / 256 * GREY_BINS, GREY_BINS):
        weights = (1 - chroma) * grey_weight
        counts += np.bincount(HUE_BINS * SAT_BINS + grey_bin, weights, COLOUR_BINS)
    return counts / counts.sum()


def _ramp(values: np.ndarray) -> np.ndarray:
    low, high = CHROMA_RAMP
    return ((values - low) / (high - low)).clip(0.0, 1.0)


def _soft_bins(
    position: np.ndarray, bins: int, *, circular: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A position in bin units (bin k spans [k, k + 1)) shared between its two nearest bins'
    centres: [(bin, weight), (bin, weight)]."""
    centred = position - 0.5
    lower = np.floor(centred)
    upper_weight = centred - lower
    lower_bin = lower.astype(np.int64)
    upper_bin = lower_bin + 1
    if circular:
        lower_bin, upper_bin = lower_bin % bins, upper_bin % bins
    else:
        lower_bin, upper_bin = lower_bin.clip(0, bins - 1), upper_bin.clip(0, bins - 1)
    return [(lower_bin, 1 - upper_weight), (upper_bin, upper_weight)]


def hellinger(a: np.ndarray, b: np.ndarray) -> float:
    return math.sqrt(max(0.0, 1.0 - float(np.sqrt(a * b).sum())))


# --- the signature -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    """A person's torso and thigh colour histograms (empty: not learnt yet) and how many frames
    each was learnt from (enrolled at ENROL_FRAMES frames of the torso)."""

    torso: tuple[float, ...] = ()
    thighs: tuple[float, ...] = ()
    torso_frames: int = 0
    thigh_frames: int = 0

    @property
    def enrolled(self) -> bool:
        return self.torso_frames >= ENROL_FRAMES

    def distance(self, seen: Appearance) -> float | None:
        """Mean Hellinger distance over the bands in both; None: no band in common."""
        distances = [
            hellinger(np.array(mine), theirs)
            for mine, theirs in ((self.torso, seen.torso), (self.thighs, seen.thighs))
            if mine and theirs is not None
        ]
        return float(np.mean(distances)) if distances else None

    def learn(self, seen: Appearance) -> "Signature":
        """While enrolling, one more frame of the mean (a frame without the torso teaches
        nothing); once enrolled, a step towards a frame that matches closely."""
        return self._adapted(seen) if self.enrolled else self._enrolled_with(seen)

    def _enrolled_with(self, seen: Appearance) -> "Signature":
        if seen.torso is None:
            return self
        torso = _mean_with(self.torso, seen.torso, self.torso_frames)
        if seen.thighs is None:
            return Signature(torso, self.thighs, self.torso_frames + 1, self.thigh_frames)
        thighs = _mean_with(self.thighs, seen.thighs, self.thigh_frames)
        return Signature(torso, thighs, self.torso_frames + 1, self.thigh_frames + 1)

    def _adapted(self, seen: Appearance) -> "Signature":
        distance = self.distance(seen)
        if distance is None or distance >= ADAPT_BELOW:
            return self
        torso, thighs = _step(self.torso, seen.torso), _step(self.thighs, seen.thighs)
        return Signature(torso, thighs, self.torso_frames, self.thigh_frames)


def _mean_with(mean: tuple[float, ...], value: np.ndarray, count: int) -> tuple[float, ...]:
    previous = np.array(mean) if mean else np.zeros(COLOUR_BINS)
    return tuple(float(x) for x in previous + (value - previous) / (count + 1))


def _step(learnt: tuple[float, ...], seen: np.ndarray | None) -> tuple[float, ...]:
    if not learnt or seen is None:
        return learnt
    moved = np.array(learnt) + ADAPT_RATE * (seen - np.array(learnt))
    return tuple(float(x) for x in moved)


def tell_apart(distances: list[float | None]) -> int | None:
    """Which candidate is the person: the only one that matches, or one that matches better than
    every other by TELL_APART_MARGIN; None when nobody matches or two match about equally."""
    matching = sorted(
        (distance, index)
        for index, distance in enumerate(distances)
        if distance is not None and distance < MATCH_LIMIT
    )
    if not matching:
        return None
    if len(matching) > 1 and matching[1][0] - matching[0][0] < TELL_APART_MARGIN:
        return None
    return matching[0][1]


# --- someone else in view ------------------------------------------------------------------------
def paint_out(image_bgr: np.ndarray, pose: Pose) -> np.ndarray:
    """A copy of the frame with the person's body covered in flat grey, so that the detector
    finds whoever else is there (it ignores a flat silhouette, but for a few stray boxes that
    `looks_like_another_person` turns down)."""
    painted = image_bgr.copy()
    torso = np.round(pose.pixels[[11, 12, 24, 23]]).astype(np.int32)
    cv2.fillConvexPoly(painted, torso, PAINT)
    _draw_limbs(
        painted,
        pose.pixels,
        _torso_px(pose),
        PAINT,
        PAINT_LIMB_WIDTH,
        PAINT_HAND_RADIUS,
        PAINT_HEAD_RADIUS,
        segments=_PAINTED_SEGMENTS,
        ends=_HANDS + _FEET,
    )
    return painted


def body_size_px(pose: Pose) -> float:
    """The larger side of the box around the visible landmarks (all of them if few are)."""
    seen = pose.visibility >= VISIBLE
    points = pose.pixels[seen] if seen.sum() >= 4 else pose.pixels
    return float(np.ptp(points, axis=0).max())


def looks_like_another_person(candidate: Pose, followed: Pose, painted: np.ndarray) -> bool:
    """Whether a pose found on the painted frame is someone else than `followed`, large and
    clear enough to be taken for them (not the paint, a poster's small figure or clutter)."""
    size = body_size_px(followed)
    hips_apart = np.linalg.norm(candidate.pixels[_HIPS].mean(0) - followed.pixels[_HIPS].mean(0))
    return bool(
        hips_apart >= OTHER_MIN_SEPARATION * size
        and body_size_px(candidate) >= OTHER_MIN_SIZE * size
        and (candidate.visibility >= VISIBLE).mean() >= OTHER_MIN_VISIBLE
        and painted_share(candidate, painted) <= OTHER_MAX_PAINTED
    )


def painted_share(pose: Pose, painted: np.ndarray) -> float:
    """The share of the pose's torso quadrilateral that lies on painted pixels."""
    mask = np.zeros(painted.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(pose.pixels[[11, 12, 24, 23]]).astype(np.int32), (1,))
    pixels = painted[mask > 0]
    if len(pixels) == 0:
        return 1.0
    return float(np.all(pixels == PAINT, axis=1).mean())


# --- on the wire ---------------------------------------------------------------------------------
def signature_to_wire(signature: Signature) -> IdentityWire:
    return {
        "torso": [round(x, 4) for x in signature.torso],
        "thighs": [round(x, 4) for x in signature.thighs],
        "torso_frames": signature.torso_frames,
        "thigh_frames": signature.thigh_frames,
    }


def signature_from_wire(data: Any) -> Signature | None:
    """The signature a stream carries; None for anything malformed (the stream then learns its
    person again)."""
    try:
        torso, thighs = _histogram(data["torso"]), _histogram(data["thighs"])
        torso_frames, thigh_frames = _count(data["torso_frames"]), _count(data["thigh_frames"])
    except (TypeError, KeyError, ValueError):
        return None
    return Signature(torso, thighs, torso_frames, thigh_frames)


def _histogram(values: Any) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) not in (0, COLOUR_BINS):
        raise ValueError("a histogram has COLOUR_BINS shares, or none")
    shares = tuple(float(x) for x in values)
    if any(not math.isfinite(x) or x < 0 for x in shares):
        raise ValueError("shares are finite and not negative")
    return shares


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("a count is a natural number")
    return value
