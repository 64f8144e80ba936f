"""Speed of the video-analysis pipeline against bare MediaPipe, on the same frames, on one core.

    .venv/bin/python bench/analyze_speed.py [--video PATH] [--rounds 5] [--core 0]

Both sides get the same decoded 640x480 frames (the video letterboxed into 640x480) in memory:
- bare: MediaPipe's own pose API in tracking mode (mp.solutions.pose.Pose, full model, smoothing
  on), one `process` call per frame;
- pipeline: what `analyze_video` runs after decoding: the top-down engine on every frame, joint
  angles, zero-phase smoothing, form measures and repetition counting.
The process is pinned to one core; the two are run alternately, `rounds` times each, and the
medians are printed with their ratio. Targets: pipeline >= 0.9x bare, and >= 40 frames/s.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import mediapipe as mp  # noqa: E402
import numpy as np  # noqa: E402

from analysis.exercises import BY_SLUG  # noqa: E402
from analysis.filters import butterworth_zero_phase  # noqa: E402
from analysis.pose.engine import PoseEngine  # noqa: E402
from analysis.video import count_repetitions, read_frames, track_poses  # noqa: E402

WIDTH, HEIGHT = 640, 480


def letterbox(frame: np.ndarray) -> np.ndarray:
    scale = min(WIDTH / frame.shape[1], HEIGHT / frame.shape[0])
    resized = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    top = (HEIGHT - resized.shape[0]) // 2
    left = (WIDTH - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def bare_mediapipe(frames: list[tuple[float, np.ndarray]]) -> float:
    with mp.solutions.pose.Pose(
        static_image_mode=False, model_complexity=1, smooth_landmarks=True
    ) as pose:
        pose.process(cv2.cvtColor(frames[0][1], cv2.COLOR_BGR2RGB))  # load outside the clock
        started = time.perf_counter()
        for _, frame in frames:
            pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        return len(frames) / (time.perf_counter() - started)


def pipeline(frames: list[tuple[float, np.ndarray]]) -> tuple[float, int]:
    with PoseEngine() as engine:
        engine.process(frames[0][1], -1.0)  # load the models outside the clock, like the bare side
        started = time.perf_counter()
        poses, _ = track_poses(frames, engine=engine)
        _, reps, _ = count_repetitions(poses, BY_SLUG["squat"])
        return len(frames) / (time.perf_counter() - started), len(reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--video", type=Path, default=ROOT / "tests/fixtures/squat_side_rohanx01.mp4"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    cv2.setNumThreads(1)

    fps = cv2.VideoCapture(str(args.video)).get(cv2.CAP_PROP_FPS) or 30.0
    started = time.perf_counter()
    frames = [(t, letterbox(frame)) for t, frame in read_frames(args.video, fps)]
    decode_fps = len(frames) / (time.perf_counter() - started)
    print(f"video: {args.video.name}, {len(frames)} frames letterboxed to {WIDTH}x{HEIGHT}")
    print(f"pinned to core {args.core}; {args.rounds} rounds, bare and pipeline alternating")
    print(f"decoding + letterboxing: {decode_fps:.1f} frames/s (same for both, not in the figures)")

    # scipy.signal loads lazily (~1.5 s) on the first zero-phase smoothing: a start-up cost paid
    # once per process, not per frame, so it is paid here before the clocks run.
    butterworth_zero_phase(np.zeros(10), fs_hz=30.0)
    bare_runs, pipeline_runs = [], []
    for round_number in range(1, args.rounds + 1):
        bare_runs.append(bare_mediapipe(frames))
        speed, reps = pipeline(frames)
        pipeline_runs.append(speed)
        print(
            f"  round {round_number}: bare {bare_runs[-1]:.1f} fps, "
            f"pipeline {pipeline_runs[-1]:.1f} fps ({reps} squats)"
        )
    bare, ours = statistics.median(bare_runs), statistics.median(pipeline_runs)
    print(
        f"median bare MediaPipe (tracking mode): {bare:.1f} frames/s ({1000 / bare:.1f} ms/frame)"
    )
    print(
        f"median analyze_video pipeline:         {ours:.1f} frames/s ({1000 / ours:.1f} ms/frame)"
    )
    print(f"ratio pipeline / bare: {ours / bare:.2f}  (target >= 0.90; pipeline target >= 40 fps)")


if __name__ == "__main__":
    main()
