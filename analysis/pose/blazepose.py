"""Top-down BlazePose without MediaPipe's graphs: the person detector and the full landmark model
run by any runtime (analysis.pose.runtimes), with their pre- and post-processing here in numpy
and OpenCV.

The numbers are those of MediaPipe's pose graphs (pose_detection_cpu, pose_landmark_by_roi_cpu):

    detector   the frame letterboxed into 224x224 (black borders), RGB scaled to [-1, 1];
               2254 SSD anchors; each anchor's box and 4 keypoints decoded (x, y first, offsets in
               input pixels); scores by sigmoid (clipped at +-100), kept from 0.5; weighted
               non-maximum suppression at IoU 0.3; the letterbox removed. The person box comes
               from keypoints 0 (hip centre) and 1 (body circle) by analysis.pose.roi's rule.
    landmarks  the box cut out by a rotated affine warp to 256x256 (edges replicated), RGB in
               [0, 1]; 39 landmarks x (x, y, z, visibility, presence) in input pixels, the last
               two by sigmoid; x, y refined on the 64x64 heatmaps (a 7x7 window's confidence-
               weighted mean where its peak is 0.5 or more); the pose presence score (the model
               gives a probability) below 0.5 is no person; 39 world landmarks in metres, rotated
               with the box. Landmarks 33 and 34 (hip centre, body circle) give the next box.

Tracking mode as in a live pose worker: the landmark model on the box from the previous frame's
landmarks, the detector only when there is none or the person was lost there. No smoothing.

`DirectBackend` makes this PoseEngine's backend (the live pose workers' runtime "litert");
`estimate` is the bare tracking loop (no identity: the person followed is the most prominent one
detected), for the benchmarks.

Usage::

    pose = litert_blazepose()            # analysis.pose.runtimes
    result, tracking = pose.estimate(frame_bgr, timestamp_s, BoxTracking())
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from analysis.pose.roi import RegionOfInterest, prominence, roi_from_keypoints
from analysis.pose.types import Pose

# A model run by a runtime: NHWC float32 input, outputs by their .tflite names.
Model = Callable[[np.ndarray], dict[str, np.ndarray]]

DETECTOR_SIZE = 224
DETECTOR_STRIDES = (8, 16, 32, 32, 32)
DETECTOR_KEYPOINTS = 4
SCORE_CLIP = 100.0
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3

LANDMARK_SIZE = 256
LANDMARKS = 33  # the model gives 39: 33 body landmarks, 2 for the next box, 4 unused
MODEL_LANDMARKS = 39
HEATMAP_KERNEL = 7
MIN_REFINE_CONFIDENCE = 0.5
MIN_PRESENCE = 0.5


@dataclass(frozen=True)
class Landmarked:
    """The landmark model's answer on one box: the pose, each landmark's presence (the likelihood
    that it lies in the frame), the pose presence score, and the box for the next frame."""

    pose: Pose
    presence: np.ndarray
    score: float
    next_box: RegionOfInterest


@dataclass(frozen=True)
class BoxTracking:
    """A stream's state in tracking mode: the box to look in on the next frame (None: detect)."""

    next_box: RegionOfInterest | None = None


class BlazePose:
    """The detector and the landmark model, each a `Model`. Stateless between frames."""

    def __init__(self, detector: Model, landmarker: Model) -> None:
        self._detector = detector
        self._landmarker = landmarker

    def estimate(
        self, image_bgr: np.ndarray, timestamp_s: float, tracking: BoxTracking
    ) -> tuple[Pose | None, BoxTracking]:
        """One frame of a stream in tracking mode. `timestamp_s` is not used (nothing is smoothed):
        it keeps PoseEngine.estimate's shape."""
        if tracking.next_box is not None:
            found = self.landmarks(image_bgr, tracking.next_box, tracked=True)
            if found is not None:
                return found.pose, BoxTracking(found.next_box)
        height, width = image_bgr.shape[:2]
        boxes = self.detect(image_bgr)
        if not boxes:
            return None, BoxTracking()
        box = max(boxes, key=lambda each: prominence(each, width, height))
        found = self.landmarks(image_bgr, box, tracked=False)
        if found is None:
            return None, BoxTracking()
        return found.pose, BoxTracking(found.next_box)

    def detect(self, image_bgr: np.ndarray) -> list[RegionOfInterest]:
        """One box per person the detector finds, most confident first."""
        height, width = image_bgr.shape[:2]
        side = max(width, height)
        crop = _warp(
            image_bgr, (width / 2, height / 2), side, 0.0, DETECTOR_SIZE, cv2.BORDER_CONSTANT
        )
        outputs = self._detector(_rgb_tensor(crop, low=-1.0, high=1.0))
        keypoints = decode_detections(outputs["Identity"][0], outputs["Identity_1"][0, :, 0])
        # From the letterboxed square back to the frame: the square is centred on it.
        scale = np.array([side / width, side / height])
        keypoints = (keypoints - 0.5) * scale + 0.5
        return [
            roi_from_keypoints(tuple(person[0]), tuple(person[1]), width, height)
            for person in keypoints
        ]

    def landmarks(
        self, image_bgr: np.ndarray, box: RegionOfInterest, *, tracked: bool
    ) -> Landmarked | None:
        """The pose of the person in `box`, or None when the model finds nobody there."""
        height, width = image_bgr.shape[:2]
        center = box.center_px(width, height)
        side = box.pixel_size(width)
        if not side > 0:
            return None  # a box of no size (or not a number) holds nobody
        crop = _warp(image_bgr, center, side, box.rotation, LANDMARK_SIZE, cv2.BORDER_REPLICATE)
        outputs = self._landmarker(_rgb_tensor(crop, low=0.0, high=1.0))
        score = float(outputs["Identity_1"].reshape(-1)[0])
        if score < MIN_PRESENCE:
            return None
        raw = outputs["Identity"].reshape(MODEL_LANDMARKS, 5)
        crop_xyz = raw[:, :3] / LANDMARK_SIZE
        crop_xyz[:, :2] = refine_on_heatmaps(crop_xyz[:, :2], outputs["Identity_3"][0])
        image_xyz = _to_image(crop_xyz, box)
        world = outputs["Identity_4"].reshape(MODEL_LANDMARKS, 3)[:LANDMARKS].astype(np.float64)
        world[:, :2] = world[:, :2] @ _rotation(box.rotation).T
        hips, circle = image_xyz[LANDMARKS, :2], image_xyz[LANDMARKS + 1, :2]
        pose = Pose(
            pixels=image_xyz[:LANDMARKS, :2] * np.array([width, height], dtype=np.float64),
            world=world,
            visibility=_sigmoid(raw[:LANDMARKS, 3]).astype(np.float64),
            image_size=(width, height),
            depth=image_xyz[:LANDMARKS, 2],
            tracked=tracked,
        )
        return Landmarked(
            pose=pose,
            presence=_sigmoid(raw[:LANDMARKS, 4]).astype(np.float64),
            score=score,
            next_box=roi_from_keypoints(tuple(hips), tuple(circle), width, height),
        )


class DirectBackend:
    """PoseEngine's backend on BlazePose run directly: nothing is smoothed and nothing carries
    over from one call to the next, so frames need no clock and searched people no graph of
    their own."""

    def __init__(self, pose: BlazePose) -> None:
        self._pose = pose

    def start_frame(self, timestamp_s: float) -> None:
        pass

    def detect(self, image_bgr: np.ndarray) -> list[RegionOfInterest]:
        return self._pose.detect(image_bgr)

    def landmarks(
        self,
        image_bgr: np.ndarray,
        box: RegionOfInterest,
        *,
        tracked: bool,
        searched: bool = False,
    ) -> tuple[Pose, RegionOfInterest] | None:
        found = self._pose.landmarks(image_bgr, box, tracked=tracked)
        return None if found is None else (found.pose, found.next_box)

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- the detector -------------------------------------------------------------------------------
@cache
def detector_anchors() -> np.ndarray:
    """(2254, 2) anchor centres, normalised: per stride (equal strides in a row share a grid), per
    cell row by row, two anchors per layer (aspect ratio 1 and its interpolated scale; all of
    size 1, as the detector's anchors are of fixed size)."""
    centres = []
    layer = 0
    while layer < len(DETECTOR_STRIDES):
        stride = DETECTOR_STRIDES[layer]
        layers = 1
        while layer + layers < len(DETECTOR_STRIDES) and DETECTOR_STRIDES[layer + layers] == stride:
            layers += 1
        cells = -(-DETECTOR_SIZE // stride)  # ceil
        ys, xs = np.meshgrid(
            (np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij"
        )
        grid = np.column_stack([xs.ravel(), ys.ravel()])
        centres.append(np.repeat(grid, 2 * layers, axis=0))
        layer += layers
    return np.concatenate(centres)


def decode_detections(raw: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """(people, 4, 2) keypoints, normalised to the letterboxed input, after weighted non-maximum
    suppression; `raw` is the (2254, 12) box and keypoint regression, `logits` the scores."""
    scores = _sigmoid(np.clip(logits, -SCORE_CLIP, SCORE_CLIP))
    kept = scores >= MIN_DETECTION_SCORE
    if not kept.any():
        return np.zeros((0, DETECTOR_KEYPOINTS, 2))
    anchors = detector_anchors()[kept]
    values = raw[kept].astype(np.float64) / DETECTOR_SIZE
    centres = values[:, :2] + anchors
    half = values[:, 2:4] / 2
    boxes = np.hstack([centres - half, centres + half])  # xmin, ymin, xmax, ymax
    keypoints = values[:, 4:].reshape(-1, DETECTOR_KEYPOINTS, 2) + anchors[:, None, :]
    return weighted_nms(boxes, keypoints, scores[kept])


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The keypoints of each group of overlapping detections, averaged by score: the most
    confident left takes every other that overlaps it by more than NMS_IOU."""
    order = np.argsort(-scores, kind="stable")
    people = []
    while order.size:
        overlaps = _iou(boxes[order[0]], boxes[order])
        group = order[overlaps > NMS_IOU]
        weights = scores[group] / scores[group].sum()
        people.append(np.tensordot(weights, keypoints[group], axes=1))
        order = order[overlaps <= NMS_IOU]
    return np.array(people)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


# --- the landmark model -------------------------------------------------------------------------
def refine_on_heatmaps(xy: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Each landmark inside the crop moved to the confidence-weighted mean of the HEATMAP_KERNEL
    window of its (64, 64, n) heatmap logits around it, when that window's peak confidence is
    MIN_REFINE_CONFIDENCE or more. Positions normalised to the crop; cells by their corner."""
    rows_n, cols_n, count = heatmaps.shape
    # Truncation towards zero, as the reference does: -0.5 cell still counts as cell 0.
    col = np.trunc(xy[:, 0] * cols_n).astype(int)
    row = np.trunc(xy[:, 1] * rows_n).astype(int)
    inside = (col >= 0) & (col < cols_n) & (row >= 0) & (row < rows_n)
    offsets = np.arange(HEATMAP_KERNEL) - HEATMAP_KERNEL // 2
    rows, cols = row[:, None] + offsets, col[:, None] + offsets  # (n, k)
    valid = ((rows >= 0) & (rows < rows_n))[:, :, None] & ((cols >= 0) & (cols < cols_n))[
        :, None, :
    ]
    logits = heatmaps[
        np.clip(rows, 0, rows_n - 1)[:, :, None],
        np.clip(cols, 0, cols_n - 1)[:, None, :],
        np.arange(count)[:, None, None],
    ]
    confidence = np.where(valid, _sigmoid(logits), 0.0)
    total = confidence.sum(axis=(1, 2))
    refined = inside & (confidence.max(axis=(1, 2)) >= MIN_REFINE_CONFIDENCE) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    mean_col = (confidence * cols[:, None, :]).sum(axis=(1, 2)) / safe / cols_n
    mean_row = (confidence * rows[:, :, None]).sum(axis=(1, 2)) / safe / rows_n
    return np.where(refined[:, None], np.column_stack([mean_col, mean_row]), xy)


def _to_image(crop_xyz: np.ndarray, box: RegionOfInterest) -> np.ndarray:
    """Landmarks normalised to the box's crop, to the frame: x, y normalised to its width and
    height, z to the box's width in the frame (the scale of x)."""
    centred = (crop_xyz[:, :2] - 0.5) @ _rotation(box.rotation).T
    xy = centred * np.array([box.width, box.height]) + np.array([box.x_center, box.y_center])
    return np.column_stack([xy, crop_xyz[:, 2] * box.width]).astype(np.float64)


# --- images and tensors -------------------------------------------------------------------------
def _warp(
    image: np.ndarray,
    center: tuple[float, float],
    side: float,
    rotation: float,
    size: int,
    border: int,
) -> np.ndarray:
    """The square of `side` pixels centred on `center`, turned by `rotation` (radians, clockwise
    on the screen), as a size x size image: one affine warp, bilinear."""
    scale = size / side
    cos, sin = np.cos(rotation) * scale, np.sin(rotation) * scale
    cx, cy = center
    matrix = np.array(
        [
            [cos, sin, size / 2 - cos * cx - sin * cy],
            [-sin, cos, size / 2 + sin * cx - cos * cy],
        ]
    )
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)


def _rgb_tensor(crop_bgr: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """A (1, size, size, 3) float32 RGB tensor with pixel values 0..255 mapped to low..high."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32)
    return (rgb * np.float32((high - low) / 255) + np.float32(low))[None]


def _rotation(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * values))  # 1 / (1 + exp(-x)) without overflow
