"""Every person in a video, tracked by identity (analysis.people), and the bench that scores it
(bench/tracking.py).

The real clips are the two lab views in ../shared/data/multiperson (skipped without them), scored
against the hand-made lists in bench/tracks; the single-person clip is the committed squat video.
"""

import dataclasses
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from analysis.kinematics import PoseSeries
from analysis.people import (
    PersonTrack,
    _region_histogram,
    box_around,
    choose_patient,
    people_summary,
    track_people,
)
from analysis.pose.engine import PoseEngine
from analysis.pose.multi import MultiPoseEngine, PersonInFrame, box_in_frame, one_body, sweep_tiles
from analysis.pose.roi import RegionOfInterest
from analysis.pose.types import Pose
from analysis.video import read_frames, track_poses

ROOT = Path(__file__).resolve().parents[2]
VIDEOS = ROOT.parent / "shared" / "data" / "multiperson"
CLIPS = ("pose2sim_multi_cam01", "pose2sim_multi_cam02")
SQUATS = ROOT / "tests" / "fixtures" / "pose_squats.mp4"
needs_clips = pytest.mark.skipif(
    not (VIDEOS / f"{CLIPS[0]}.mp4").is_file(), reason="needs ../shared/data/multiperson"
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tracking", ROOT / "bench" / "tracking.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tracking"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tracked(bench: ModuleType) -> dict[str, tuple[list[PersonTrack], object]]:
    """Each lab clip's tracks and their score against its list."""
    results = {}
    for clip in CLIPS:
        track_list = bench.load_track_list(ROOT / "bench" / "tracks" / f"{clip}.json")
        tracks = track_people(read_frames(VIDEOS / track_list.clip, 60.0))
        results[clip] = (tracks, bench.score_people(tracks, track_list))
    return results


@needs_clips
@pytest.mark.parametrize("clip", CLIPS)
def test_each_listed_person_keeps_one_track_id_without_a_switch(tracked, clip):
    tracks, score = tracked[clip]
    assert score.id_switches == 0
    for name, ids in score.ids.items():
        assert len(ids) <= 1, f"{name} had ids {ids}"
    # The two people in the foreground are followed in every frame (the bystanders, small in
    # the background, may wait for the detector's next sweep).
    assert score.matched["patient"] == 100
    assert score.matched["woman in grey"] == 100
    assert score.ids["patient"] != score.ids["woman in grey"]


@needs_clips
@pytest.mark.parametrize("clip", CLIPS)
def test_no_track_lasts_on_the_skeleton_model_or_on_nobody(tracked, clip):
    tracks, score = tracked[clip]
    on_people = sum(len(ids) for ids in score.ids.values())
    assert len(tracks) == on_people
    assert score.false_person_frames <= 5


@needs_clips
def test_ids_count_from_one_in_order_of_first_appearance(tracked):
    tracks, _ = tracked[CLIPS[1]]
    assert [track.track_id for track in tracks] == list(range(1, len(tracks) + 1))
    firsts = [int(np.argmax(track.poses.visibility.max(axis=1) > 0)) for track in tracks]
    assert firsts == sorted(firsts)
    for track in tracks:
        assert len(track.poses) == 100  # one row per frame, NaN where not seen
    summary = people_summary(tracks)
    assert [row["frames_seen"] for row in summary] == [track.frames_seen for track in tracks]


def _hide_bystander(
    frames: Iterator[tuple[float, np.ndarray]], hidden: range
) -> Iterator[tuple[float, np.ndarray]]:
    """The lab clip with the bystander at the left edge covered by a grey board for a while."""
    for index, (t_s, frame) in enumerate(frames):
        if index in hidden:
            frame = frame.copy()
            frame[200:820, 0:230] = 128
        yield t_s, frame


@needs_clips
def test_a_person_hidden_longer_than_the_hold_gets_their_id_back(bench):
    """40 frames (0.67 s, past HOLD_S) behind a board: the track ends, and re-identification by
    appearance gives the reappearing bystander the id she had."""
    clip = CLIPS[0]
    track_list = bench.load_track_list(ROOT / "bench" / "tracks" / f"{clip}.json")
    hidden = range(15, 55)
    frames = read_frames(VIDEOS / track_list.clip, 60.0)
    first_80 = (frame for index, frame in enumerate(frames) if index < 80)
    tracks = track_people(_hide_bystander(first_80, hidden))
    people = tuple(
        dataclasses.replace(p, hidden=((15, 54),)) if p.name == "bystander" else p
        for p in track_list.people
    )
    score = bench.score_people(tracks, dataclasses.replace(track_list, frames=80, people=people))
    assert score.id_switches == 0
    assert len(score.ids["bystander"]) == 1
    (her,) = [track for track in tracks if track.track_id == score.ids["bystander"][0]]
    seen = np.flatnonzero(her.poses.visibility.max(axis=1) > 0)
    assert seen.min() < hidden.start and seen.max() >= hidden.stop  # before and after the board


def test_a_single_person_clip_gives_one_track():
    told: list[tuple[int, int]] = []
    tracks = track_people(read_frames(SQUATS, 5.0), progress=lambda *n: told.append(n), total=65)
    assert told[-1] == (65, 65) and len(told) == 65
    assert len(tracks) == 1
    assert tracks[0].track_id == 1
    assert tracks[0].frames_seen >= 0.9 * len(tracks[0].poses)


def test_no_frames_give_no_tracks():
    assert track_people([]) == []


def test_frames_of_different_sizes_are_refused():
    frames = [(0.0, np.zeros((480, 640, 3), np.uint8)), (0.2, np.zeros((240, 320, 3), np.uint8))]
    with pytest.raises(ValueError, match="frame 1 is 320x240 px; the frames before it are 640x480"):
        track_people(frames)


def _track(track_id: int, hips: list[tuple[float, float] | None]) -> PersonTrack:
    """A track whose two hip landmarks sit on the given centres (None: not seen)."""
    poses = PoseSeries.empty_frames(np.arange(len(hips)) / 10)
    for frame, hip in enumerate(hips):
        if hip is not None:
            poses.pixels[frame, :] = hip
            poses.visibility[frame, :] = 0.9
    return PersonTrack(track_id=track_id, poses=poses)


def _two_people(bench: ModuleType, frames: int):
    def listed(name: str, x: float, patient: bool) -> object:
        return bench.Listed(
            name=name,
            height_px=500.0,
            key_frames=np.array([0.0]),
            key_hips=np.array([[x, 500.0]]),
            patient=patient,
        )

    return bench.TrackList(
        clip="synthetic.mp4",
        frames=frames,
        people=(listed("a", 200.0, True), listed("b", 800.0, False)),
        not_people=(listed("statue", 1400.0, False),),
    )


def test_the_bench_counts_a_swap_of_two_ids_as_two_switches(bench):
    a, b = (200.0, 500.0), (800.0, 500.0)
    tracks = [_track(1, [a, a, b, b]), _track(2, [b, b, a, a])]
    score = bench.score_people(tracks, _two_people(bench, 4))
    assert score.id_switches == 2
    assert score.ids == {"a": [1, 2], "b": [2, 1]}
    assert score.person_frames == 8 and score.missed == 0


def test_the_bench_counts_tracks_on_nobody_and_people_without_a_track(bench):
    a, statue, nowhere = (210.0, 520.0), (1400.0, 500.0), (500.0, 1500.0)
    tracks = [_track(1, [a, a, None]), _track(2, [statue, nowhere, None])]
    score = bench.score_people(tracks, _two_people(bench, 3))
    assert score.id_switches == 0
    assert score.missed == 1 + 3  # a in the last frame, b in all three
    assert score.false_person_frames == 2 and score.false_on_objects == 1
    # Hips 10 and 20 px off a 500 px person, in two frames.
    assert score.errors == pytest.approx([np.hypot(10, 20) / 500] * 2)


def test_the_bench_finds_the_frames_a_single_person_engine_was_on_someone_else(bench):
    a, b = (200.0, 500.0), (800.0, 500.0)
    poses = _track(1, [a, None, b, b, (500.0, 1500.0)]).poses
    score = bench.score_following(poses, _two_people(bench, 5))
    assert score.on_patient == 1 and score.no_pose == 1
    assert score.wrong == {"b": [2, 3], "nobody": [4]}
    assert bench.frame_runs([2, 3, 4, 9]) == "2-4, 9"


def test_a_track_list_without_a_patient_is_refused(bench, tmp_path):
    path = tmp_path / "clip.json"
    path.write_text(
        '{"clip": "clip.mp4", "frames": 2, "people": '
        '[{"name": "x", "height_px": 100, "hips": {"0": [1, 2]}}]}'
    )
    with pytest.raises(bench.TrackListError, match="patient"):
        bench.load_track_list(path)


def test_sweep_tiles_cover_a_portrait_frame_at_two_scales_flush_with_its_edges():
    tiles = sweep_tiles(1088, 1920)
    whole = [tile for tile in tiles if tile[2] == 1088]
    half = [tile for tile in tiles if tile[2] == 544]
    assert whole == [(0, 0, 1088), (0, 544, 1088), (0, 832, 1088)]
    assert {top for _, top, _ in half} == {0, 272, 544, 816, 1088, 1360, 1376}
    assert {left for left, _, _ in half} == {0, 272, 544}
    assert len(tiles) == 3 + 7 * 3


def test_a_box_found_in_a_tile_lands_in_the_frame_where_the_tile_was():
    in_tile = RegionOfInterest(x_center=0.5, y_center=0.25, width=0.5, height=0.5, rotation=0.3)
    box = box_in_frame(in_tile, (272, 1088, 544), 1088, 1920)
    assert box.center_px(1088, 1920) == pytest.approx((544, 1224))
    assert box.pixel_size(1088) == pytest.approx(272)
    assert box.height * 1920 == pytest.approx(272) and box.rotation == 0.3


def _stick_figure(hips: tuple[float, float], height_px: float) -> PersonInFrame:
    """A standing figure `height_px` tall, arms down, hip centre at `hips`."""
    x, y = hips
    h = height_px
    pixels = np.tile(np.array([x, y - 0.45 * h]), (33, 1))  # head points
    joints = {
        11: (-0.12, -0.3), 12: (0.12, -0.3), 13: (-0.14, -0.12), 14: (0.14, -0.12),
        15: (-0.15, 0.05), 16: (0.15, 0.05), 23: (-0.07, 0.0), 24: (0.07, 0.0),
        25: (-0.07, 0.25), 26: (0.07, 0.25), 27: (-0.07, 0.5), 28: (0.07, 0.5),
    }  # fmt: skip
    for index, (dx, dy) in joints.items():
        pixels[index] = (x + dx * h, y + dy * h)
    pose = Pose(
        pixels=pixels, world=np.zeros((33, 3)), visibility=np.ones(33), image_size=(2000, 2000)
    )
    side = 1.25 * h / 2000
    box = RegionOfInterest(
        x_center=x / 2000, y_center=y / 2000, width=side, height=side, rotation=0
    )
    return PersonInFrame(pose=pose, box=box, follower=1)


def test_a_ghost_on_a_leg_is_one_body_with_its_person_and_a_neighbour_is_not():
    person = _stick_figure((1000, 1000), 800)
    on_her_leg = _stick_figure((944, 1250), 200)  # a small figure along her left shin
    neighbour = _stick_figure((1330, 1000), 800)  # shoulder to shoulder, 40 % of a height apart
    assert one_body(on_her_leg, person, 2000) and one_body(person, on_her_leg, 2000)
    assert one_body(person, _stick_figure((1010, 1005), 800), 2000)
    assert not one_body(person, neighbour, 2000)


@needs_clips
def test_the_engine_keeps_no_more_followers_than_it_may():
    video = VIDEOS / f"{CLIPS[0]}.mp4"
    with MultiPoseEngine(max_people=2) as engine:
        for index, (t_s, frame) in enumerate(read_frames(video, 60.0)):
            if index == 5:
                break
            people = engine.process(frame, t_s)
            assert len(people) <= 2 and engine.followed <= 2
        assert engine.followed == 2  # three people in view, two followed


@needs_clips
@pytest.mark.parametrize("clip", CLIPS)
def test_the_single_person_analysis_follows_the_one_exercising_not_the_nearest(
    tracked, bench, clip
):
    """The woman in grey stands larger and more central; the man beside her is the one moving."""
    tracks, _ = tracked[clip]
    track_list = bench.load_track_list(ROOT / "bench" / "tracks" / f"{clip}.json")
    chosen = choose_patient(tracks)
    assert chosen is not None
    assert bench.score_following(chosen.poses, track_list).on_patient == 100
    poses, found = track_poses(read_frames(VIDEOS / track_list.clip, 60.0))
    following = bench.score_following(poses, track_list)
    assert found == 100 and following.on_patient == 100 and not following.wrong


def test_a_pose_boxed_again_gives_the_engine_the_box_it_built_itself():
    """box_around rebuilds the top-down box from landmarks alone (to hand a chosen person to the
    single-person engine): upright, centred on the hips, holding every landmark."""
    with PoseEngine() as engine:
        for t_s, frame in read_frames(SQUATS, 30.0):
            pose = engine.process(frame, t_s)
            if pose is not None:
                break
    assert pose is not None
    box = box_around(pose)
    width, height = pose.image_size
    hips = (pose.pixels[23] + pose.pixels[24]) / 2
    assert box.center_px(width, height) == pytest.approx(tuple(hips))
    assert abs(box.rotation) < 0.3  # standing upright
    reach = np.linalg.norm(pose.pixels[pose.visibility >= 0.5] - hips, axis=1).max()
    assert reach <= box.pixel_size(width) / 2 <= 1.5 * reach


def test_a_body_region_outside_the_picture_has_no_colour():
    """A person at the edge: their thighs' quadrilateral may lie wholly outside the frame."""
    hsv = np.zeros((100, 100, 3), dtype=np.uint8)
    outside = np.array([[120.0, 10.0], [150.0, 10.0], [150.0, 60.0], [120.0, 60.0]])
    assert _region_histogram(hsv, outside) is None
    inside = np.array([[10.0, 10.0], [60.0, 10.0], [60.0, 60.0], [10.0, 60.0]])
    histogram = _region_histogram(hsv, inside)
    assert histogram is not None and histogram.sum() == pytest.approx(1.0)
