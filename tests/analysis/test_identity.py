"""Keeping the patient by identity: the signature (analysis.pose.identity) on exact inputs and
real frames, and the single-person engine on the real two-person lab recordings
(../shared/data/multiperson, skipped without it) against the hand-made track lists in
bench/tracks."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.engine import PoseEngine, Tracking
from analysis.pose.identity import (
    COLOUR_BINS,
    ENROL_FRAMES,
    MATCH_LIMIT,
    PAINT,
    TELL_APART_MARGIN,
    Appearance,
    IdentityStatus,
    Signature,
    appearance,
    colour_histogram,
    hellinger,
    looks_like_another_person,
    paint_out,
    signature_from_wire,
    signature_to_wire,
    tell_apart,
)
from analysis.pose.roi import RegionOfInterest
from analysis.pose.types import Pose, pose_from_wire
from analysis.pose.worker import FrameServer
from analysis.video import read_frames, track_poses

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MULTIPERSON = ROOT.parent / "shared" / "data" / "multiperson"
TRACKS = ROOT / "bench" / "tracks"
CLIPS = ("pose2sim_multi_cam01", "pose2sim_multi_cam02")
needs_lab_clips = pytest.mark.skipif(
    not all((MULTIPERSON / f"{clip}.mp4").is_file() for clip in CLIPS)
    or not all((TRACKS / f"{clip}.json").is_file() for clip in CLIPS),
    reason="needs ../shared/data/multiperson and bench/tracks",
)


def _hsv_pixels(hue: int, saturation: int, value: int, count: int = 500) -> np.ndarray:
    return np.tile(np.array([[hue, saturation, value]], dtype=np.uint8), (count, 1))


# --- the histogram and the distance --------------------------------------------------------------
def test_a_histogram_has_its_bins_summing_to_one_and_grey_goes_to_the_brightness_bins():
    red = colour_histogram(_hsv_pixels(0, 220, 200))
    grey = colour_histogram(_hsv_pixels(90, 5, 128))
    assert red.shape == grey.shape == (COLOUR_BINS,)
    assert red.sum() == pytest.approx(1) and grey.sum() == pytest.approx(1)
    assert grey[:-4].sum() == 0 and red[-4:].sum() == 0  # no hue for grey; red is all hue
    assert hellinger(red, grey) == pytest.approx(1.0)
    assert hellinger(red, red) == pytest.approx(0.0, abs=1e-9)


def test_a_colour_on_a_bins_edge_does_not_jump_between_bins():
    """Hue 22 and 23 straddle the edge of the first hue bin (180 / 8 = 22.5)."""
    below, above = (colour_histogram(_hsv_pixels(hue, 200, 200)) for hue in (22, 23))
    assert hellinger(below, above) < 0.05
    far = colour_histogram(_hsv_pixels(120, 200, 200))  # blue against orange
    assert hellinger(below, far) > 0.9


# --- the signature -------------------------------------------------------------------------------
def _look(torso: np.ndarray | None, thighs: np.ndarray | None = None) -> Appearance:
    return Appearance(torso, thighs)


RED = colour_histogram(_hsv_pixels(0, 220, 200))
BLUE = colour_histogram(_hsv_pixels(120, 220, 200))
GREY = colour_histogram(_hsv_pixels(0, 0, 128))


def test_a_signature_is_learnt_over_frames_that_show_the_torso():
    signature = Signature()
    for _ in range(ENROL_FRAMES - 1):
        signature = signature.learn(_look(RED, GREY))
        signature = signature.learn(_look(None, BLUE))  # no torso: teaches nothing
    assert not signature.enrolled and signature.thigh_frames == ENROL_FRAMES - 1
    signature = signature.learn(_look(RED))
    assert signature.enrolled
    assert np.allclose(signature.torso, RED) and np.allclose(signature.thighs, GREY)
    assert signature.distance(_look(RED, GREY)) == pytest.approx(0, abs=1e-9)
    assert signature.distance(_look(BLUE, BLUE)) == pytest.approx(1)
    assert signature.distance(_look(BLUE)) == pytest.approx(1)  # only the bands seen count
    assert signature.distance(_look(None)) is None


def test_once_learnt_it_follows_close_frames_slowly_and_ignores_other_ones():
    signature = Signature()
    for _ in range(ENROL_FRAMES):
        signature = signature.learn(_look(RED))
    reddish = colour_histogram(np.vstack([_hsv_pixels(0, 220, 200, 9), _hsv_pixels(8, 220, 200)]))
    near = signature.learn(_look(reddish))
    assert 0 < near.distance(_look(reddish)) < signature.distance(_look(reddish))  # type: ignore[operator]
    assert signature.learn(_look(BLUE)) == signature  # someone else teaches nothing
    assert near.torso_frames == ENROL_FRAMES  # the count stays that of the enrolment


@pytest.mark.parametrize(
    "distances, chosen",
    [
        ([0.1], 0),
        ([0.8, 0.1], 1),
        ([None, 0.2, 0.9], 1),
        ([0.1, 0.1 + TELL_APART_MARGIN / 2], None),  # two match about equally: cannot tell
        ([0.1, 0.1 + TELL_APART_MARGIN * 1.5], 0),
        ([MATCH_LIMIT, 0.9], None),  # nobody matches
        ([None, None], None),  # nobody shows anything to judge
        ([], None),
    ],
)
def test_telling_apart_takes_only_a_clear_match(distances, chosen):
    assert tell_apart(distances) == chosen


def test_a_signature_survives_the_wire_and_stays_small():
    signature = Signature()
    for _ in range(ENROL_FRAMES):
        signature = signature.learn(_look(RED, BLUE))
    wire = json.dumps(signature_to_wire(signature))
    assert len(wire) < 1000
    again = signature_from_wire(json.loads(wire))
    assert again is not None and again.enrolled
    assert np.allclose(again.torso, signature.torso, atol=1e-4)
    assert np.allclose(again.thighs, signature.thighs, atol=1e-4)
    assert signature_from_wire(None) is None
    assert signature_from_wire({**signature_to_wire(signature), "torso": [1.0]}) is None


# --- real frames ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(FIXTURES / "pose.jpg"))


@pytest.fixture(scope="module")
def photo_pose(photo: np.ndarray) -> Pose:
    with PoseEngine() as engine:
        pose = engine.process(photo, 0.0)
    assert pose is not None
    return pose


def test_the_bands_of_a_real_person_are_seen_and_match_themselves(photo, photo_pose):
    seen = appearance(photo_pose, photo)
    assert seen.torso is not None and seen.thighs is not None
    mirrored = cv2.flip(photo, 1)  # the same clothes elsewhere in the picture
    width = photo.shape[1]
    moved = Pose(
        pixels=np.column_stack([width - 1 - photo_pose.pixels[:, 0], photo_pose.pixels[:, 1]]),
        world=photo_pose.world,
        visibility=photo_pose.visibility,
        image_size=photo_pose.image_size,
    )
    assert hellinger(seen.torso, appearance(moved, mirrored).torso) < 0.1  # type: ignore[arg-type]
    signature = Signature()
    for _ in range(ENROL_FRAMES):
        signature = signature.learn(seen)
    her_frame = _fixture_frames("pose_squats.mp4", 1)[0]  # someone else: a woman in pink
    with PoseEngine() as engine:
        her = engine.process(her_frame, 0.0)
    assert her is not None
    assert signature.distance(appearance(her, her_frame)) >= MATCH_LIMIT  # type: ignore[operator]


def test_a_painted_out_person_is_covered_and_not_taken_for_someone_else(photo, photo_pose):
    painted = paint_out(photo, photo_pose)
    hips = np.round(photo_pose.pixels[23:25].mean(axis=0)).astype(int)
    assert tuple(painted[hips[1], hips[0]]) == PAINT
    assert not looks_like_another_person(photo_pose, photo_pose, painted)


# --- the real two-person lab recordings ----------------------------------------------------------
# The track lists (bench/tracks, made by eye) give each person's hip centre at key frames; a pose
# is on a listed person when its hips lie within a fifth of that person's height of theirs.
ON_PERSON = 0.2


def _track_list(clip: str) -> dict:
    return json.loads((TRACKS / f"{clip}.json").read_text())


def _listed_hips(person: dict, frame: int) -> np.ndarray:
    keys = sorted(person["hips"], key=int)
    frames = [int(key) for key in keys]
    return np.array(
        [np.interp(frame, frames, [person["hips"][key][axis] for key in keys]) for axis in (0, 1)]
    )


def _in_view(person: dict, frame: int) -> bool:
    return not any(first <= frame <= last for first, last in person.get("hidden", []))


def _whose(pose: Pose | None, listed: dict, frame: int) -> str | None:
    """The name of the listed person the pose is on ("nobody listed" if none), None: no pose."""
    if pose is None:
        return None
    hips = pose.pixels[23:25].mean(axis=0) * listed["image_size"][0] / pose.image_size[0]
    distances = {
        person["name"]: np.linalg.norm(hips - _listed_hips(person, frame)) / person["height_px"]
        for person in listed["people"]
        if _in_view(person, frame)
    }
    name = min(distances, key=lambda key: distances[key])
    return name if distances[name] <= ON_PERSON else "nobody listed"


def _patient_name(listed: dict) -> str:
    return next(person["name"] for person in listed["people"] if person["patient"])


@pytest.fixture(scope="module")
def lab_frames() -> dict[str, list[np.ndarray]]:
    return {
        clip: [frame for _, frame in read_frames(MULTIPERSON / f"{clip}.mp4", 60.0)]
        for clip in CLIPS
    }


def _pose_of(engine: PoseEngine, frame: np.ndarray, person: dict, index: int) -> Pose | None:
    """A listed person's landmarks in a frame: the engine handed a box on their listed hips."""
    height, width = frame.shape[:2]
    hips = _listed_hips(person, index)
    side = 1.25 * person["height_px"]
    box = RegionOfInterest(hips[0] / width, hips[1] / height, side / width, side / height, 0.0)
    pose, _ = engine.estimate(frame, 0.0, Tracking(next_box=box, chosen=True))
    return pose


def _alone(frames: list[np.ndarray], listed: dict, keep: str, count: int) -> list[np.ndarray]:
    """The first frames with the others listed painted out (the patient stepping in front of
    the camera alone, before the others come)."""
    alone = []
    with PoseEngine(smooth=False) as engine:
        for index, frame in enumerate(frames[:count]):
            for person in listed["people"]:
                if person["name"] == keep or not _in_view(person, index):
                    continue
                pose = _pose_of(engine, frames[index], person, index)
                frame = frame if pose is None else paint_out(frame, pose)
            alone.append(frame)
    return alone


def _offline(frames: list[np.ndarray]) -> list[tuple[Pose | None, IdentityStatus]]:
    answers = []
    with PoseEngine() as engine:
        for index, frame in enumerate(frames):
            answers.append((engine.process(frame, index / 60), engine.status))
    return answers


def _live(
    frames: list[np.ndarray], runtime: str = "mediapipe"
) -> list[tuple[Pose | None, IdentityStatus]]:
    """As a pose worker serves a page's frames: 640x480 at most, JPEG 70, tracking carried."""
    server, tracking, answers = FrameServer(runtime), None, []
    for index, frame in enumerate(frames):
        scale = min(640 / frame.shape[1], 480 / frame.shape[0])
        small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
        answer = server.serve(jpeg, index / 60, tracking)
        tracking = answer["tracking"]
        answers.append((pose_from_wire(answer["pose"]), IdentityStatus(answer["identity"])))
    server.engine.close()
    return answers


def _live_on_litert(frames: list[np.ndarray]) -> list[tuple[Pose | None, IdentityStatus]]:
    return _live(frames, "litert")


@needs_lab_clips
@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize(
    "run", [_offline, _live, _live_on_litert], ids=["offline", "live", "live-litert"]
)
def test_with_the_patient_learnt_first_the_engine_never_gives_a_pose_on_anyone_else(
    lab_frames, clip, run
):
    """The patient steps in front of the camera alone (the others painted out of the first
    frames), then the real recording: the woman beside him, their arms crossing. Every pose is
    his; none is withheld here, the colours telling them apart clearly."""
    listed = _track_list(clip)
    patient = _patient_name(listed)
    lead = _alone(lab_frames[clip], listed, patient, ENROL_FRAMES + 2)
    answers = run(lead + lab_frames[clip])[len(lead) :]
    whose = [_whose(pose, listed, index) for index, (pose, _) in enumerate(answers)]
    assert set(whose) == {patient}
    assert {status for _, status in answers} == {IdentityStatus.CONFIRMED}


@needs_lab_clips
@pytest.mark.parametrize("clip", CLIPS)
def test_with_someone_else_learnt_first_the_engine_never_gives_the_patient_instead(
    lab_frames, clip
):
    """The other way round: whoever was learnt is kept, the woman in grey here."""
    listed = _track_list(clip)
    lead = _alone(lab_frames[clip], listed, "woman in grey", ENROL_FRAMES + 2)
    answers = _live(lead + lab_frames[clip])[len(lead) :]
    whose = [_whose(pose, listed, index) for index, (pose, _) in enumerate(answers)]
    assert set(whose) <= {"woman in grey", None}
    assert whose.count("woman in grey") >= 0.9 * len(whose)


@needs_lab_clips
@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize(
    "run", [_offline, _live, _live_on_litert], ids=["offline", "live", "live-litert"]
)
def test_with_two_people_in_view_from_the_start_it_waits_instead_of_guessing(lab_frames, clip, run):
    """Nobody has been learnt and two people stand there: no pose, "uncertain", throughout
    (a live session tells the patient; nothing is counted). The detector misses the other
    person on some frames, so a frame or two alone in view is not enough to start."""
    answers = run(lab_frames[clip])
    assert all(pose is None for pose, _ in answers)
    assert {status for _, status in answers} == {IdentityStatus.UNCERTAIN}


# --- offline analysis ----------------------------------------------------------------------------
def _fixture_frames(name: str, count: int, step: int = 1) -> list[np.ndarray]:
    video = cv2.VideoCapture(str(FIXTURES / name))
    frames = []
    for index in range(count * step):
        ok, frame = video.read()
        assert ok
        if index % step == 0:
            frames.append(cv2.resize(frame, (360, 640), interpolation=cv2.INTER_AREA))
    return frames


def test_offline_the_frames_of_someone_else_in_the_patients_place_are_nan_rows():
    """Past the opening in which analysis.video chooses the patient, another person takes the
    patient's place: those frames are no one's (NaN), and the patient's are theirs again."""
    fps = 10.0
    her = _fixture_frames("pose_squats.mp4", 45)
    him = _fixture_frames("squat_side_rohanx01.mp4", 10, step=3)
    frames = her[:35] + him + her[35:]
    poses, found = track_poses((index / fps, frame) for index, frame in enumerate(frames))
    seen = np.isfinite(poses.pixels).all(axis=(1, 2))
    assert seen[:35].all() and seen[45:].all()
    assert not seen[35:45].any()
    assert found == 45
