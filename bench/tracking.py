"""Who is who: identity tracking of every person in a video, against hand-made track lists.

    .venv/bin/python bench/tracking.py [--tracks DIR] [--videos DIR]

Every `<clip stem>.json` in --tracks (default bench/tracks) lists the people of the clip of that
name in --videos (default ../shared/data/multiperson). A list holds `clip`, `frames`, `people`:
each with `name`, `patient` (true for the one person the exercise is about), `height_px` (a rough
body height, which sets the matching tolerance), `hips` ({frame: [x, y]}: the hip centre in
pixels at key frames, straight lines in between) and `hidden` ([[first, last], ...] frames where
the hips are out of view or fully hidden), and `not_people` (things a detector may take for a
person, same fields but `patient` and `hidden`). bench/tracks/README.md says how the lists were
made.

A pose is on a listed person when its hip centre (mean of the two hip landmarks) lies within
MATCH_TOLERANCE of that person's body height from their listed hip centre; in each frame, tracks
and listed people are paired one to one (the nearest pairs first, by the Hungarian method).

- multi-person mode: analysis.people.track_people. Over the person-frames (a listed person in
  view in a frame) it counts id switches (a listed person paired with another track id than the
  last time, or a track id paired with another listed person than the last time: one per pair),
  missed person-frames (nobody's track on them), and false-person frames (a track on nobody
  listed; those on a listed non-person, such as an anatomical skeleton model, are counted too).
  A track on a listed person whose hips are hidden is neither scored nor false.
- single-person mode: the ordinary engine (analysis.video.track_poses). Wrong-person frames: the
  followed pose is on a listed person other than the patient, or on nobody.

Prints per clip the figures of each mode (median hip error relative to body height, fps), the
frames of wrong-person runs, then last:
  id switches N over M person-frames, wrong-person frames K
summed over the clips. Exits 0 whatever the score, 2 for a missing or malformed list or video.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from analysis.kinematics import PoseSeries  # noqa: E402
from analysis.landmarks import Landmark  # noqa: E402
from analysis.people import PersonTrack, track_people  # noqa: E402
from analysis.video import VideoAnalysisError, read_frames, track_poses, video_fps  # noqa: E402

DEFAULT_TRACKS = ROOT / "bench" / "tracks"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "multiperson"
# A fifth of a body height: hand-read hip centres are good to about a twentieth, BlazePose's
# hips sit a little off the anatomical joints, and neighbours on these clips stand a third of a
# height or more apart.
MATCH_TOLERANCE = 0.2


class TrackListError(ValueError):
    """A track list that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True, eq=False)
class Listed:
    """A person (or a thing taken for one) in a track list; equal only to itself."""

    name: str
    height_px: float
    key_frames: np.ndarray  # (K,) increasing
    key_hips: np.ndarray  # (K, 2) pixels
    patient: bool = False
    hidden: tuple[tuple[int, int], ...] = ()

    def hips_at(self, frame: int) -> np.ndarray:
        return np.array(
            [
                np.interp(frame, self.key_frames, self.key_hips[:, 0]),
                np.interp(frame, self.key_frames, self.key_hips[:, 1]),
            ]
        )

    def in_view(self, frame: int) -> bool:
        return not any(first <= frame <= last for first, last in self.hidden)


@dataclass(frozen=True)
class TrackList:
    clip: str
    frames: int
    people: tuple[Listed, ...]
    not_people: tuple[Listed, ...] = ()

    @property
    def patient(self) -> Listed:
        return next(person for person in self.people if person.patient)

    def person_frames(self) -> int:
        return sum(p.in_view(f) for p in self.people for f in range(self.frames))


def load_track_list(path: Path) -> TrackList:
    try:
        data = json.loads(path.read_text())
        track_list = TrackList(
            clip=str(data["clip"]),
            frames=int(data["frames"]),
            people=tuple(_listed(entry) for entry in data["people"]),
            not_people=tuple(_listed(entry) for entry in data.get("not_people", [])),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise TrackListError(f"{path}: {error!r}") from error
    if sum(person.patient for person in track_list.people) != 1:
        raise TrackListError(f"{path}: exactly one person must be the patient")
    return track_list


def _listed(entry: dict[str, Any]) -> Listed:
    keys = sorted(entry["hips"], key=int)
    return Listed(
        name=str(entry["name"]),
        height_px=float(entry["height_px"]),
        key_frames=np.array([int(key) for key in keys], dtype=float),
        key_hips=np.array([entry["hips"][key] for key in keys], dtype=float).reshape(-1, 2),
        patient=bool(entry.get("patient", False)),
        hidden=tuple((int(first), int(last)) for first, last in entry.get("hidden", [])),
    )


def hip_centers(poses: PoseSeries) -> np.ndarray:
    """(T, 2) mean of the two hip landmarks per frame; NaN where there is no pose."""
    return (poses.pixels[:, Landmark.LEFT_HIP] + poses.pixels[:, Landmark.RIGHT_HIP]) / 2


def pair_up(hips: list[np.ndarray], listed: list[Listed], frame: int) -> list[tuple[int, int]]:
    """(pose index, listed index) pairs within MATCH_TOLERANCE, one to one, nearest first."""
    if not hips or not listed:
        return []
    cost = np.array(
        [
            [np.linalg.norm(hip - person.hips_at(frame)) / person.height_px for person in listed]
            for hip in hips
        ]
    )
    rows, cols = linear_sum_assignment(np.where(cost <= MATCH_TOLERANCE, cost, 1e6))
    return [(r, c) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= MATCH_TOLERANCE]


@dataclass
class PeopleScore:
    """Multi-person mode on one clip."""

    person_frames: int = 0
    id_switches: int = 0
    missed: int = 0
    false_person_frames: int = 0
    false_on_objects: int = 0
    ids: dict[str, list[int]] = field(default_factory=dict)  # track ids paired with each person
    matched: dict[str, int] = field(default_factory=dict)
    errors: list[float] = field(default_factory=list)  # hip error / body height, per pair


def score_people(tracks: list[PersonTrack], track_list: TrackList) -> PeopleScore:
    score = PeopleScore(person_frames=track_list.person_frames())
    score.ids = {person.name: [] for person in track_list.people}
    score.matched = {person.name: 0 for person in track_list.people}
    last_track: dict[str, int] = {}
    last_person: dict[int, str] = {}
    centers = {track.track_id: hip_centers(track.poses) for track in tracks}
    for frame in range(track_list.frames):
        seen = [(tid, c[frame]) for tid, c in centers.items() if np.isfinite(c[frame]).all()]
        pairs = pair_up([hip for _, hip in seen], list(track_list.people), frame)
        paired = {seen[r][0]: track_list.people[c] for r, c in pairs}
        for track_id, person in paired.items():
            if not person.in_view(frame):
                continue  # on a hidden person: not scored, not false
            moved = last_track.get(person.name, track_id) != track_id
            moved |= last_person.get(track_id, person.name) != person.name
            score.id_switches += moved
            last_track[person.name], last_person[track_id] = track_id, person.name
            if track_id not in score.ids[person.name]:
                score.ids[person.name].append(track_id)
            score.matched[person.name] += 1
            error = np.linalg.norm(centers[track_id][frame] - person.hips_at(frame))
            score.errors.append(float(error / person.height_px))
        taken = set(paired.values())
        score.missed += sum(p.in_view(frame) and p not in taken for p in track_list.people)
        unpaired = [hip for tid, hip in seen if tid not in paired]
        score.false_person_frames += len(unpaired)
        score.false_on_objects += len(pair_up(unpaired, list(track_list.not_people), frame))
    return score


@dataclass
class FollowScore:
    """Single-person mode on one clip."""

    on_patient: int = 0
    no_pose: int = 0
    wrong: dict[str, list[int]] = field(default_factory=dict)  # frames, by whom the pose was on

    @property
    def wrong_frames(self) -> int:
        return sum(len(frames) for frames in self.wrong.values())


def score_following(poses: PoseSeries, track_list: TrackList) -> FollowScore:
    score = FollowScore()
    centers = hip_centers(poses)
    everyone = list(track_list.people) + list(track_list.not_people)
    for frame in range(min(len(poses), track_list.frames)):
        if not np.isfinite(centers[frame]).all():
            score.no_pose += 1
            continue
        pairs = pair_up([centers[frame]], everyone, frame)
        on = everyone[pairs[0][1]] if pairs else None
        if on is not None and on.patient:
            score.on_patient += 1
        else:
            score.wrong.setdefault(on.name if on else "nobody", []).append(frame)
    return score


def frame_runs(frames: list[int]) -> str:
    """1, 2, 3, 7 -> "1-3, 7"."""
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def timed(run: Callable[[], Any], frames: int) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run()
    return result, frames / max(time.perf_counter() - started, 1e-9)


def bench_clip(track_list: TrackList, video: Path) -> tuple[PeopleScore, FollowScore]:
    fps = video_fps(video)
    tracks, people_fps = timed(lambda: track_people(read_frames(video, fps)), track_list.frames)
    people = score_people(tracks, track_list)
    (poses, _), follow_fps = timed(lambda: track_poses(read_frames(video, fps)), track_list.frames)
    follow = score_following(poses, track_list)
    print(f"{track_list.clip}: {track_list.frames} frames, {len(track_list.people)} listed people")
    _print_people(people, tracks, people_fps)
    _print_following(follow, track_list, follow_fps)
    return people, follow


def _print_people(score: PeopleScore, tracks: list[PersonTrack], fps: float) -> None:
    seen = [track.frames_seen for track in tracks]
    print(
        f"  multi-person: {len(tracks)} tracks (median {statistics.median(seen or [0]):.0f} "
        f"frames seen), {fps:.1f} fps, median hip error "
        f"{statistics.median(score.errors or [float('nan')]):.3f} of body height"
    )
    for name, ids in score.ids.items():
        print(f"    {name}: track ids {ids or '-'}, on them in {score.matched[name]} frames")
    print(
        f"    id switches {score.id_switches} over {score.person_frames} person-frames, "
        f"missed {score.missed}, false-person frames {score.false_person_frames} "
        f"({score.false_on_objects} on a listed non-person)"
    )


def _print_following(score: FollowScore, track_list: TrackList, fps: float) -> None:
    print(
        f"  single-person: {fps:.1f} fps, on the patient in {score.on_patient} frames, "
        f"wrong-person frames {score.wrong_frames}, no pose {score.no_pose}"
    )
    for name, frames in score.wrong.items():
        print(f"    on {name}: frames {frame_runs(frames)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=Path, default=DEFAULT_TRACKS)
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    args = parser.parse_args(argv)
    try:
        lists = [load_track_list(path) for path in sorted(args.tracks.glob("*.json"))]
        if not lists:
            raise TrackListError(f"no track lists (*.json) in {args.tracks}")
        switches = person_frames = wrong = 0
        for track_list in lists:
            people, follow = bench_clip(track_list, args.videos / track_list.clip)
            switches += people.id_switches
            person_frames += people.person_frames
            wrong += follow.wrong_frames
    except (TrackListError, VideoAnalysisError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"id switches {switches} over {person_frames} person-frames, wrong-person frames {wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
