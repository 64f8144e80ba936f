"""How often each form rule flags a repetition on a labelled set of clips, offline and live.

    .venv/bin/python bench/form_flags.py [--labels PATH] [--jobs 2] [--no-cache]

`--labels` is a JSON list in the dev set's format (default: ../shared/data/devset/labels.json; see
bench/rep_accuracy.py, whose pose cache and clip loading this reuses). Every clip is counted as
rep_accuracy counts it, offline (analyze_video's pipeline) and live (the tracker frame by frame),
and each counted repetition's fault codes are read. A rule "judged" a repetition when its measure
had at least one frame in the camera view the rule needs.

The dev set is ordinary exercise, mostly done well, so its flags are mostly false flags: the rate
to keep low. One line per rule of the exercises seen (rule, repetitions of exercises listing it,
judged, flagged, rate, and "worst": the value nearest to flagging as a share of its threshold,
offline then live), then the clips with flags, then the summary line:
  form flags offline N/M judged (x.x%, posture N/M), live ...; R repetitions in C clips
It exits 0 whatever the rates.
"""

import argparse
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rep_accuracy import (  # noqa: E402
    DEFAULT_LABELS,
    LIVE_RUNTIME,
    Clip,
    live_poses,
    load_clips,
    offline_poses,
)

from analysis.exercises import BY_SLUG, ExerciseDefinition  # noqa: E402
from analysis.filters import sample_rate_hz, smooth_recorded  # noqa: E402
from analysis.form import RULES, Judgement, fault_value, form_measures, threshold_for  # noqa: E402
from analysis.kinematics import PoseSeries, single_side  # noqa: E402
from analysis.live_replay import track_live  # noqa: E402
from analysis.pose.types import Pose  # noqa: E402
from analysis.repetitions import RepetitionMetrics  # noqa: E402
from analysis.tracker import Plan  # noqa: E402
from analysis.video import count_repetitions  # noqa: E402

PATHS = ("offline", "live")


@dataclass
class Tally:
    """Per rule code: repetitions of exercises listing it, judged, flagged, and the value nearest
    to flagging as a share of its threshold (1 and beyond: flagged)."""

    reps: Counter[str] = field(default_factory=Counter)
    judged: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    worst: dict[str, float] = field(default_factory=dict)

    def add(self, other: "Tally") -> None:
        self.reps.update(other.reps)
        self.judged.update(other.judged)
        self.flagged.update(other.flagged)
        for code, share in other.worst.items():
            self.worst[code] = max(self.worst.get(code, -np.inf), share)


@dataclass(frozen=True)
class Result:
    clip: Clip
    reps: dict[str, int]  # per path
    tallies: dict[str, Tally]  # per path
    flags: dict[str, list[str]]  # per path: "rep N: code, code"


def score(clip: Clip, use_cache: bool) -> Result:
    exercise = BY_SLUG[clip.exercise]
    poses = offline_poses(clip.path, use_cache)
    chosen, offline_reps, _ = count_repetitions(poses, exercise, side=clip.side)
    offline_measures = _filtered(form_measures(poses, single_side(chosen)), poses.t_s)
    served = live_poses(clip.path, LIVE_RUNTIME, use_cache)
    # One set that never ends: the clip decides how many repetitions there are.
    plan = Plan(exercise, clip.side, sets=1, reps=1000, target_deg=exercise.default_target_deg)
    live_reps = track_live(served, plan).reps
    live_series = _series(served)
    live_measures = form_measures(live_series, single_side(clip.side))
    judged = {
        "offline": (offline_reps, poses.t_s, offline_measures),
        "live": (live_reps, live_series.t_s, live_measures),
    }
    tallies, flags = {}, {}
    for path, (reps, t_s, measures) in judged.items():
        tallies[path] = _tally(exercise, reps, t_s, measures)
        flags[path] = [f"{r.index}: {', '.join(r.form_flags)}" for r in reps if r.form_flags]
    return Result(clip, {p: len(judged[p][0]) for p in PATHS}, tallies, flags)


def _filtered(measures: dict[str, np.ndarray], t_s: np.ndarray) -> dict[str, np.ndarray]:
    """As analysis.video filters them."""
    fs = sample_rate_hz(t_s)
    return {name: smooth_recorded(values, fs) for name, values in measures.items()}


def _series(served: list[tuple[float, Pose | None]]) -> PoseSeries:
    """The live frames as one series (no pose: NaN), as the tracker measures them one by one."""
    series = PoseSeries.empty_frames(np.array([t for t, _ in served]))
    for i, (_, pose) in enumerate(served):
        if pose is not None:
            series.pixels[i], series.world[i] = pose.pixels, pose.world
            series.visibility[i] = pose.visibility
    return series


def _tally(
    exercise: ExerciseDefinition,
    reps: list[RepetitionMetrics],
    t_s: np.ndarray,
    measures: dict[str, np.ndarray],
) -> Tally:
    """Each repetition's faults: judged (measured in the view needed) and flagged."""
    tally = Tally()
    for rep in reps:
        # Start and end are rounded to the millisecond.
        frames = (t_s >= rep.start_s - 6e-4) & (t_s <= rep.end_s + 6e-4)
        own = {name: values[frames] for name, values in measures.items()}
        peak = exercise.thresholds.peak_end(rep.min_deg, rep.max_deg)
        for fault in exercise.form_faults:
            target = exercise.default_target_deg
            value = fault_value(fault, exercise, own, peak_deg=peak, target_deg=target)
            threshold = threshold_for(fault, exercise)
            if value is None or threshold is None:
                continue  # observed by the therapist
            flagged = fault.code in rep.form_flags
            tally.reps[fault.code] += 1
            tally.judged[fault.code] += bool(np.isfinite(value)) or flagged
            tally.flagged[fault.code] += flagged
            if np.isfinite(value):
                share = _share(RULES[fault.code].judgement, value, threshold)
                tally.worst[fault.code] = max(tally.worst.get(fault.code, -np.inf), share)
    return tally


def _share(judgement: Judgement, value: float, threshold: float) -> float:
    """How near the value came to being flagged, as a share of the threshold (1: at it)."""
    if judgement is Judgement.CLOSEST:  # flagged below the threshold
        return threshold / value if value > 0 else np.inf
    return value / threshold if threshold else np.inf


def _rate(flagged: int, judged: int) -> str:
    return f"{100 * flagged / judged:5.1f}%" if judged else "    - "


def report(results: list[Result]) -> list[str]:
    totals = {path: Tally() for path in PATHS}
    for result in results:
        for path in PATHS:
            totals[path].add(result.tallies[path])
    head = "judged flagged  rate worst"
    lines = [f"{'rule':20} {'view':5} {'reps':>5} | offline {head} | live {head}"]
    for code in sorted(totals["offline"].reps, key=list(RULES).index):
        view = RULES[code].view or "any"
        cells = [
            f"{totals[p].judged[code]:6d} {totals[p].flagged[code]:7d} "
            f"{_rate(totals[p].flagged[code], totals[p].judged[code])} "
            f"{totals[p].worst.get(code, np.nan):5.2f}"
            for p in PATHS
        ]
        reps = totals["offline"].reps[code]
        lines.append(f"{code:20} {view:5} {reps:5d} |         {cells[0]} |      {cells[1]}")
    lines.append("")
    for result in results:
        for path in PATHS:
            if result.flags[path]:
                name = result.clip.path.name[:40]
                lines.append(f"{name:40} {path:7} rep {'; rep '.join(result.flags[path])}")
    lines.append(summary(results, totals))
    return lines


def summary(results: list[Result], totals: dict[str, Tally]) -> str:
    """All rules, then the posture ones alone (the target shortfalls judge the range instead)."""
    parts = []
    for path in PATHS:
        tally = totals[path]
        posture = [c for c in tally.reps if RULES[c].judgement is not Judgement.SHORTFALL]
        judged, flagged = sum(tally.judged.values()), sum(tally.flagged.values())
        posture_judged = sum(tally.judged[c] for c in posture)
        posture_flagged = sum(tally.flagged[c] for c in posture)
        parts.append(
            f"{path} {flagged}/{judged} judged ({_rate(flagged, judged).strip()}, "
            f"posture {posture_flagged}/{posture_judged})"
        )
    reps = sum(r.reps["offline"] for r in results)
    return f"form flags {', '.join(parts)}; {reps} repetitions in {len(results)} clips"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--jobs", type=int, default=2, help="clips analysed at once")
    parser.add_argument("--no-cache", action="store_true", help="run the pose engine again")
    args = parser.parse_args(argv)
    clips, use_cache = load_clips(args.labels), not args.no_cache
    if args.jobs == 1:
        results = [score(clip, use_cache) for clip in clips]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(score, clips, [use_cache] * len(clips)))
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
