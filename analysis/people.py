"""Every person in a recorded video, each followed by a persistent id.

A PersonTrack is one person's landmarks over all the frames of the video (NaN rows where that
person was not seen), so the single-person analysis (angles, repetitions, exports) runs on it
unchanged.
"""

from dataclasses import dataclass

from analysis.kinematics import PoseSeries


@dataclass(frozen=True)
class PersonTrack:
    """One tracked person: `track_id` stays the same across frames, occlusions and crossings;
    `poses` has one row per frame of the video (the same `t_s` for every track)."""

    track_id: int
    poses: PoseSeries

    @property
    def frames_seen(self) -> int:
        return int((self.poses.visibility.max(axis=1) > 0).sum())
