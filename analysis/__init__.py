"""The numerical core: pose engine, joint angles, filters, repetitions (no Django imports)."""

import os

# A second line of defence behind the frame guard's header check (analysis.pose.frames): OpenCV
# refuses to allocate images above this many pixels (1920x1080). OpenCV reads the variable once,
# when it loads, and mediapipe imports it, so it is set here, before any analysis module can load
# it; setdefault leaves an operator's own value alone.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1920 * 1080))
