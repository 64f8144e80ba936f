"""The person box of the top-down pipeline: a rotated square around the whole body.

BlazePose's detector and its landmark model both give two body keypoints: the hip centre and a
point on the circle that encloses the body. The box is centred on the hips, rotated so that the
body stands upright in it, and 1.25x the circle's diameter (the margin the landmark model was
trained with). The same construction serves the first frame (detector keypoints) and tracking
(the auxiliary landmarks of the previous frame), as in MediaPipe's own pose graph.
"""

import math
from dataclasses import dataclass

BOX_MARGIN = 1.25


@dataclass(frozen=True)
class RegionOfInterest:
    """Normalised to the image: centre and size in [0, 1] of width/height, rotation in radians."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float

    def pixel_size(self, image_width: int) -> float:
        return self.width * image_width

    def center_px(self, image_width: int, image_height: int) -> tuple[float, float]:
        return self.x_center * image_width, self.y_center * image_height


def roi_from_keypoints(
    hip_center: tuple[float, float],
    body_circle_point: tuple[float, float],
    image_width: int,
    image_height: int,
) -> RegionOfInterest:
    """Keypoints normalised to the image; the box is square in pixels."""
    cx, cy = hip_center[0] * image_width, hip_center[1] * image_height
    px, py = body_circle_point[0] * image_width, body_circle_point[1] * image_height
    # Upright means the circle point straight above the hips (image y grows downwards).
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(py - cy), px - cx))
    size = 2 * math.hypot(px - cx, py - cy) * BOX_MARGIN
    return RegionOfInterest(
        x_center=cx / image_width,
        y_center=cy / image_height,
        width=size / image_width,
        height=size / image_height,
        rotation=rotation,
    )


def prominence(roi: RegionOfInterest, image_width: int, image_height: int) -> float:
    """How likely this person is the patient on the first frame: large and near the centre.

    Body area in pixels, discounted by up to half for a box centred in a corner of the image.
    """
    size = roi.pixel_size(image_width)
    cx, cy = roi.center_px(image_width, image_height)
    off_center = math.hypot(cx - image_width / 2, cy - image_height / 2)
    half_diagonal = math.hypot(image_width, image_height) / 2
    return size * size * (1 - 0.5 * min(off_center / half_diagonal, 1.0))


def center_distance(a: RegionOfInterest, b: RegionOfInterest, width: int, height: int) -> float:
    ax, ay = a.center_px(width, height)
    bx, by = b.center_px(width, height)
    return math.hypot(ax - bx, ay - by)


def _normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
