"""Repetition counts against counts made by eye, offline and live, on any labelled set of clips.

    .venv/bin/python bench/rep_accuracy.py [--labels PATH] [--jobs 2] [--no-cache]
                                           [--runtime litert|mediapipe]

`--labels` is a JSON list in the dev set's format (default: ../shared/data/devset/labels.json):
one object per clip with `file` (relative to the labels file), `exercise` (a library slug),
`reps`, `partial_reps`, `moving_side` ("left", "right", "both" or "alternating") and
`confidence`. Every clip goes through
- offline: `analyze_video`'s pipeline (pose on every frame, zero-phase angles, the counter);
- live: the path of a live session (`analysis.live_replay`): frames as the page sends them (15
  frames/s, scaled to fit 640x480, JPEG 70), a pose worker's FrameServer on `--runtime` (the
  POSE_RUNTIME setting's choices) with the tracking state carried, the tracker frame by frame
  with placement as in a session and the countdown done.
The measured side is the one the label names, else "both" (as a prescription for both sides).

One line per clip (want, got offline, partial, got live), then the summary line:
  reps exact N/M (high-confidence N/M), within partial N/M, MAE X, worst off by K, live=offline N/M
It exits 0 whatever the score. Poses are cached in var/pose-cache by the clip's content and the
path (offline, or live with its runtime), so that a second run only counts; --no-cache runs the
pose engine again.
"""

import argparse
import hashlib
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analysis.exercises import BY_SLUG  # noqa: E402
from analysis.kinematics import PoseSeries  # noqa: E402
from analysis.live_replay import browser_frames, serve_stream, track_live  # noqa: E402
from analysis.pose.engine import RUNTIMES  # noqa: E402
from analysis.pose.types import Pose  # noqa: E402
from analysis.tracker import Plan  # noqa: E402
from analysis.video import count_repetitions, read_frames, track_poses, video_fps  # noqa: E402

DEFAULT_LABELS = ROOT.parent / "shared" / "data" / "devset" / "labels.json"
CACHE = ROOT / "var" / "pose-cache"
CACHE_VERSION = "4"  # bump when the pose engine's output changes


@dataclass(frozen=True)
class Clip:
    path: Path
    exercise: str
    reps: int
    partial_reps: int
    side: str
    high_confidence: bool


@dataclass(frozen=True)
class Result:
    clip: Clip
    offline: int
    live: int


def load_clips(labels: Path) -> list[Clip]:
    clips = []
    for entry in json.loads(labels.read_text()):
        side = entry.get("moving_side")
        clips.append(
            Clip(
                path=labels.parent / entry["file"],
                exercise=entry["exercise"],
                reps=int(entry["reps"]),
                partial_reps=int(entry.get("partial_reps", 0)),
                side=side if side in ("left", "right") else "both",
                high_confidence=entry.get("confidence") == "high",
            )
        )
    return clips


# --- poses, cached -------------------------------------------------------------------------------
def _cache_file(path: Path, kind: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    return CACHE / f"{digest}-{kind}-v{CACHE_VERSION}.npz"


def offline_poses(path: Path, use_cache: bool) -> PoseSeries:
    cached = _cache_file(path, "offline")
    if use_cache and cached.exists():
        data = np.load(cached)
        return PoseSeries(data["t_s"], data["pixels"], data["world"], data["visibility"])
    poses, _ = track_poses(read_frames(path, video_fps(path)))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cached, t_s=poses.t_s, pixels=poses.pixels, world=poses.world, visibility=poses.visibility
    )
    return poses


LIVE_RUNTIME = "litert"  # the live pose workers' default (settings.POSE_RUNTIME)


def live_poses(path: Path, runtime: str, use_cache: bool) -> list[tuple[float, Pose | None]]:
    cached = _cache_file(path, f"live-{runtime}")
    if use_cache and cached.exists():
        data = np.load(cached)
        return [
            (
                float(t),
                Pose(pixels, world, visibility, (int(size[0]), int(size[1]))) if found else None,
            )
            for t, found, pixels, world, visibility, size in zip(
                data["t_s"],
                data["found"],
                data["pixels"],
                data["world"],
                data["visibility"],
                data["image_size"],
                strict=True,
            )
        ]
    served = serve_stream(browser_frames(path), runtime)
    empty = Pose(np.zeros((33, 2)), np.zeros((33, 3)), np.zeros(33), (0, 0))
    poses = [pose or empty for _, pose in served]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cached,
        t_s=np.array([t for t, _ in served]),
        found=np.array([pose is not None for _, pose in served]),
        pixels=np.array([p.pixels for p in poses]),
        world=np.array([p.world for p in poses]),
        visibility=np.array([p.visibility for p in poses]),
        image_size=np.array([p.image_size for p in poses]),
    )
    return served


# --- counting ------------------------------------------------------------------------------------
def score(clip: Clip, runtime: str, use_cache: bool) -> Result:
    exercise = BY_SLUG[clip.exercise]
    _, reps, _ = count_repetitions(offline_poses(clip.path, use_cache), exercise, side=clip.side)
    plan = Plan(
        exercise=exercise,
        side=clip.side,
        sets=1,
        reps=1000,  # one set that never ends: the clip decides how many there are
        target_deg=exercise.default_target_deg,
    )
    live = track_live(live_poses(clip.path, runtime, use_cache), plan)
    return Result(clip, offline=len(reps), live=len(live.reps))


def summary(results: list[Result]) -> str:
    exact = [r for r in results if r.offline == r.clip.reps]
    high = [r for r in results if r.clip.high_confidence]
    high_exact = [r for r in high if r.offline == r.clip.reps]
    within = [r for r in results if r.clip.reps <= r.offline <= r.clip.reps + r.clip.partial_reps]
    errors = [abs(r.offline - r.clip.reps) for r in results]
    same = [r for r in results if r.live == r.offline]
    return (
        f"reps exact {len(exact)}/{len(results)} "
        f"(high-confidence {len(high_exact)}/{len(high)}), "
        f"within partial {len(within)}/{len(results)}, "
        f"MAE {statistics.fmean(errors):.2f}, worst off by {max(errors)}, "
        f"live=offline {len(same)}/{len(results)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--jobs", type=int, default=2, help="clips analysed at once")
    parser.add_argument("--no-cache", action="store_true", help="run the pose engine again")
    parser.add_argument(
        "--runtime", choices=RUNTIMES, default=LIVE_RUNTIME, help="the live pose workers' runtime"
    )
    args = parser.parse_args()
    clips = load_clips(args.labels)
    runtimes = [args.runtime] * len(clips)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(score, clips, runtimes, [not args.no_cache] * len(clips)))
    print(f"{'clip':44} {'exercise':18} {'conf':5} {'want':>4} {'got':>4} {'part':>4} {'live':>4}")
    for r in results:
        marks = "" if r.offline == r.clip.reps else "  <- offline"
        marks += "" if r.live == r.offline else "  <- live"
        print(
            f"{r.clip.path.name[:44]:44} {r.clip.exercise:18} "
            f"{'high' if r.clip.high_confidence else 'med':5} {r.clip.reps:4d} {r.offline:4d} "
            f"{r.clip.partial_reps:4d} {r.live:4d}{marks}"
        )
    print(summary(results))


if __name__ == "__main__":
    main()
