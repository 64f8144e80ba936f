"""The live side of a session: one pose per frame in, feedback for the patient's page out.

Pure and synchronous; the websocket consumer feeds it and sends what it returns. Stages:

    PLACING   the measured limbs are not yet in view; a message says what to change, until they
              have been seen for PLACED_S
    COUNTDOWN a short countdown, once per session (not after a rest, nor when a limb leaves the
              picture for a moment), then
    COUNTING  angles (One Euro smoothed) -> repetition counter; a set is done after its reps
    RESTING   the rest between sets, then counting again
    DONE      all sets done

Placement guides, it does not block: only measured limbs out of view stop the count (the page
says what to change once that has lasted PLACED_S). So does a pose engine that cannot tell the
person in view to be the patient (identity "uncertain", analysis.pose.identity): it sends no pose
then, so nothing of someone else is measured, and once that has lasted SOMEONE_ELSE_S the page
says that counting is paused until the patient is alone in view (`paused`); it clears as soon as
the patient is recognised again. A camera view other than the exercise's own keeps counting,
with the angle taken from the world landmarks (analysis.kinematics), and `advice` says how to
improve the set-up.
"""

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analysis.counting import (
    HOLD_BAND_DEG,
    JOINT_PREFIX,
    PartialRepetition,
    RepetitionCounter,
    Sample,
)
from analysis.exercises import AngleSpace, CameraView, ExerciseDefinition, sides_in_turn
from analysis.filters import OneEuroFilter
from analysis.form import form_measures
from analysis.kinematics import (
    MIN_VISIBILITY,
    SIDES,
    AngleSpaceChooser,
    PoseSeries,
    joint_angle_deg,
    plane_obliquity_deg,
    single_side,
)
from analysis.landmarks import sided_landmark
from analysis.pose.types import IdentityState, Pose
from analysis.quality import GOOD_OBLIQUITY_DEG, quality_measures
from analysis.repetitions import RepetitionMetrics
from analysis.similarity import raw_joint_angles

PLACED_S = 1.0  # placement must hold this long before the countdown starts
COUNTDOWN_S = 3.0
CUE_COOLDOWN_S = 4.0  # between corrections: text and voice must not pile up
CLOSE_BAND_DEG = 15.0  # "close to the target" band for the colour of the measured segment
EDGE_MARGIN = 0.02  # landmarks this close to the image border count as out of view
# The view advice reads the estimate behind the quality grade (analysis.quality): how far the
# movement's plane is turned from the image plane, from the world landmarks, averaged over about a
# second (one frame's depth is noisy). Advice starts a little past the good grade's limit and stops
# once back within it, so that it does not flicker for a patient standing near the limit.
VIEW_ADVICE_FROM_DEG = GOOD_OBLIQUITY_DEG + 5.0
VIEW_ADVICE_UNTIL_DEG = GOOD_OBLIQUITY_DEG
VIEW_AVERAGE_S = 1.0
# The engine withholds a frame or two that do not look like the patient (an arm across the torso);
# only a doubt that lasts is worth telling the patient about.
SOMEONE_ELSE_S = 0.5
SOMEONE_ELSE_MESSAGE = (
    "Someone else is in view — counting is paused until only you are in front of the camera"
)
# One Euro settings for joint angles in degrees: steady when still, little lag when moving.
LIVE_MIN_CUTOFF_HZ = 1.0
LIVE_BETA = 0.05


class Stage(StrEnum):
    PLACING = "placing"
    COUNTDOWN = "countdown"
    COUNTING = "counting"
    RESTING = "resting"
    DONE = "done"


@dataclass(frozen=True)
class Plan:
    """What the prescription asks for in this session."""

    exercise: ExerciseDefinition
    side: str  # "left", "right" or "both": the measured side
    sets: int
    reps: int
    target_deg: float
    hold_s: float = 0.0
    rest_s: float = 60.0
    expected_rom_deg: float | None = None  # the patient's own recent range, when known

    @property
    def turns(self) -> tuple[str, ...]:
        """The sides each set is done on, in turn (see analysis.exercises.sides_in_turn)."""
        return sides_in_turn(self.exercise.laterality, self.side)

    @property
    def reps_per_set(self) -> int:
        return self.reps * len(self.turns)


@dataclass
class Feedback:
    """What the page shows after one frame."""

    stage: Stage
    set_number: int
    reps_in_set: int
    angle_deg: float | None = None
    band: str | None = None  # "in", "close" or "out" of the target band
    hold_s: float = 0.0
    countdown_s: float | None = None
    rest_remaining_s: float | None = None
    placement: str | None = None  # what keeps the movement from being measured
    advice: str | None = None  # how to improve the set-up; counting goes on
    cue: str | None = None
    repetition: RepetitionMetrics | None = None
    partial: PartialRepetition | None = None
    not_counted: str | None = None  # why the partial did not count, for the patient
    set_finished: bool = False
    side: str = "both"  # the side measured now: "left", "right", or "both" (either or both limbs)
    identity: IdentityState = "confirmed"  # the pose engine's: is the person in view the patient?
    paused: str | None = None  # why counting is paused though someone is in view, for the patient


class ExerciseTracker:
    def __init__(
        self,
        plan: Plan,
        *,
        set_number: int = 1,
        reps_done_in_set: int = 0,
        countdown_done: bool = False,
    ) -> None:
        """`set_number` and `reps_done_in_set` resume a session after a dropped connection;
        `countdown_done` skips the countdown (the patient had it before the connection dropped)."""
        self.plan = plan
        self.stage = Stage.COUNTING if countdown_done else Stage.PLACING
        self._placed_since: float | None = None
        self._problem_since: float | None = None
        self._uncertain_since: float | None = None  # since when the engine doubts who is in view
        self._paused_said = False
        self._stage_since = 0.0
        self._last_cue_at = -math.inf
        self._filters = {
            (space, side): OneEuroFilter(LIVE_MIN_CUTOFF_HZ, LIVE_BETA)
            for space in AngleSpace
            for side in SIDES
        }
        self._space = AngleSpaceChooser(plan.exercise)
        self._view = ViewWatch(plan.exercise)
        turn = min(reps_done_in_set // plan.reps, len(plan.turns) - 1)
        self.counter = RepetitionCounter(
            plan.exercise,
            side=plan.turns[turn],
            target_deg=plan.target_deg,
            expected_rom_deg=plan.expected_rom_deg,
        )
        self.counter.start_set(set_number, reps_done=reps_done_in_set)

    @property
    def set_number(self) -> int:
        return self.counter.set_number

    @property
    def reps_in_set(self) -> int:
        return self.counter.index_in_set

    @property
    def measured_side(self) -> str:
        return self.counter.side

    def update(
        self, t_s: float, pose: Pose | None, identity: IdentityState = "confirmed"
    ) -> Feedback:
        """One frame's pose and the engine's identity status (see analysis.pose.types)."""
        feedback = Feedback(self.stage, self.set_number, self.reps_in_set, side=self.measured_side)
        feedback.identity = identity
        if self.stage is Stage.DONE:
            return feedback
        uncertain = identity == "uncertain"
        if uncertain:
            pose = None  # nothing is measured on someone who may not be the patient
        self._watch_identity(t_s, uncertain, feedback)
        # Before and during the set (and while resting): how to turn for a measurable view.
        feedback.advice = VIEW_ADVICE.get(self._view.update(t_s, pose) or "")
        if self.stage is Stage.RESTING:
            return self._rest(t_s, feedback)
        problem = _problem(pose, self.plan, uncertain)
        if self.stage is Stage.PLACING:
            return self._place(t_s, problem, feedback)
        if self.stage is Stage.COUNTDOWN:
            remaining = COUNTDOWN_S - (t_s - self._stage_since)
            if remaining > 0:
                feedback.countdown_s = round(remaining, 1)
                return feedback
            self._enter(Stage.COUNTING, t_s, feedback)
        self._report_problem(t_s, problem, feedback)
        # Limbs out of view give no angle (as offline): the counter sees a gap, nothing more.
        return self._count(t_s, pose, feedback)

    def finish(self) -> RepetitionMetrics | PartialRepetition | None:
        """The end of the stream: a repetition well on its way back still counts."""
        if self.stage is not Stage.COUNTING:
            return None
        return self.counter.finish()

    # --- stages ----------------------------------------------------------------------------------
    def _enter(self, stage: Stage, t_s: float, feedback: Feedback) -> None:
        self.stage = feedback.stage = stage
        self._stage_since = t_s

    def _watch_identity(self, t_s: float, uncertain: bool, feedback: Feedback) -> None:
        """`paused` once the engine has doubted for SOMEONE_ELSE_S, said once when it starts."""
        if not uncertain:
            self._uncertain_since = None
            return
        if self._uncertain_since is None:
            self._uncertain_since, self._paused_said = t_s, False
        if t_s - self._uncertain_since >= SOMEONE_ELSE_S:
            feedback.paused = SOMEONE_ELSE_MESSAGE
            if not self._paused_said:
                self._cue(t_s, feedback, SOMEONE_ELSE_MESSAGE, force=True)
                self._paused_said = True

    def _place(self, t_s: float, problem: str | None, feedback: Feedback) -> Feedback:
        if problem is not None:
            self._placed_since = None
            self._tell(t_s, PLACEMENT_MESSAGES.get(problem), feedback)
            return feedback
        if self._placed_since is None:
            self._placed_since = t_s
        if t_s - self._placed_since >= PLACED_S:
            self._enter(Stage.COUNTDOWN, t_s, feedback)
            feedback.countdown_s = COUNTDOWN_S
        return feedback

    def _report_problem(self, t_s: float, problem: str | None, feedback: Feedback) -> None:
        """While counting, a limb out of view for a moment (passing behind the body) is bridged;
        only one that stays out for PLACED_S is worth telling the patient about."""
        if problem is None:
            self._problem_since = None
            return
        if self._problem_since is None:
            self._problem_since = t_s
        if t_s - self._problem_since >= PLACED_S:
            self._tell(t_s, PLACEMENT_MESSAGES.get(problem), feedback)

    def _tell(self, t_s: float, placement: str | None, feedback: Feedback) -> None:
        """A placement message on the page and in the voice (none while `paused` says more)."""
        if placement is not None:
            feedback.placement = placement
            self._cue(t_s, feedback, placement)

    def _rest(self, t_s: float, feedback: Feedback) -> Feedback:
        remaining = self.plan.rest_s - (t_s - self._stage_since)
        if remaining > 0:
            feedback.rest_remaining_s = round(remaining, 1)
            return feedback
        self.counter.start_set(self.set_number + 1)
        if self.counter.side != self.plan.turns[0]:
            self.counter.switch_side(self.plan.turns[0])
        feedback.set_number, feedback.reps_in_set = self.set_number, 0
        self._enter(Stage.COUNTING, t_s, feedback)
        self._cue(t_s, feedback, f"Set {self.set_number}: go", force=True)
        return feedback

    def _count(self, t_s: float, pose: Pose | None, feedback: Feedback) -> Feedback:
        sample = self._sample(t_s, pose)
        angle = self.counter.followed_deg(sample)
        if math.isfinite(angle):
            feedback.angle_deg = round(angle, 1)
            feedback.band = self._band(angle)
        event = self.counter.update(sample)
        feedback.hold_s = round(self.counter.hold_s, 1)
        feedback.reps_in_set = self.reps_in_set
        if isinstance(event, PartialRepetition):
            feedback.partial = event
            feedback.not_counted = why_not_counted(event, self.plan)
            if feedback.not_counted is not None:
                self._cue(t_s, feedback, feedback.not_counted)
        elif event is not None:
            feedback.repetition = event
            self._after_repetition(t_s, event, feedback)
        elif self._hold_complete(feedback):
            self._cue(t_s, feedback, "Good, now back down" if self._upward else "Good, relax")
        return feedback

    def _after_repetition(self, t_s: float, rep: RepetitionMetrics, feedback: Feedback) -> None:
        if rep.form_flags and t_s - self._last_cue_at >= CUE_COOLDOWN_S:
            # One fault at a time, and no more often than the cooldown: the rest are flagged on
            # the repetition, and the count is said instead.
            labels = self.plan.exercise.form_labels
            self._cue(t_s, feedback, labels.get(rep.form_flags[0], rep.form_flags[0]))
        elif self.plan.hold_s and (rep.hold_s or 0) < self.plan.hold_s:
            self._cue(t_s, feedback, f"Hold for {self.plan.hold_s:g} seconds at the top")
        else:
            # The count is the main feedback and short: it is not held back by the cooldown.
            self._cue(t_s, feedback, str(self.reps_in_set), force=True)
        if self.reps_in_set < self.plan.reps_per_set:
            if self.reps_in_set % self.plan.reps == 0:  # this side's share done: the next one
                self.counter.finish()
                self.counter.switch_side(self.plan.turns[self.reps_in_set // self.plan.reps])
                # The switch matters more than the count it would replace.
                feedback.cue, self._last_cue_at = f"Now the {self.counter.side} side", t_s
                feedback.side = self.measured_side
            return
        self.counter.finish()
        feedback.set_finished = True
        if self.set_number >= self.plan.sets:
            self._enter(Stage.DONE, t_s, feedback)
            self._cue(t_s, feedback, "Well done, all sets finished", force=True)
        else:
            self._enter(Stage.RESTING, t_s, feedback)
            feedback.rest_remaining_s = self.plan.rest_s
            self._cue(t_s, feedback, f"Set {self.set_number} done, rest", force=True)

    # --- helpers ---------------------------------------------------------------------------------
    @property
    def _upward(self) -> bool:
        return self.plan.exercise.thresholds.direction > 0

    def _hold_complete(self, feedback: Feedback) -> bool:
        held = self.counter.hold_s >= self.plan.hold_s
        return bool(self.plan.hold_s) and self.counter.moving and feedback.band == "in" and held

    def _band(self, angle: float) -> str:
        shortfall = self.counter.target_shortfall_deg(angle)
        if shortfall <= HOLD_BAND_DEG:
            return "in"
        return "close" if shortfall <= HOLD_BAND_DEG + CLOSE_BAND_DEG else "out"

    def _cue(self, t_s: float, feedback: Feedback, text: str, *, force: bool = False) -> None:
        if feedback.cue is not None or (not force and t_s - self._last_cue_at < CUE_COOLDOWN_S):
            return
        feedback.cue = text
        self._last_cue_at = t_s

    def _sample(self, t_s: float, pose: Pose | None) -> Sample:
        if pose is None:
            return Sample(t_s, math.nan, math.nan)
        series = _one_frame(t_s, pose)
        exercise = self.plan.exercise
        obliquity = float(plane_obliquity_deg(series.world, exercise.plane)[0])
        chosen = self._space(obliquity)
        angles = {}
        for space in AngleSpace:  # both filters see every frame, ready for a change of view
            for side in SIDES:
                raw = float(joint_angle_deg(series, exercise.angle, side, space)[0])
                angles[space, side] = self._filters[space, side](t_s, raw)
        side = single_side(self.counter.side)  # in turn: the limb exercising now
        measured = form_measures(series, side) | quality_measures(series, exercise)
        # Each repetition's joint angles, to compare it with a therapist's reference movement.
        measured |= {JOINT_PREFIX + n: v for n, v in raw_joint_angles(series, exercise).items()}
        measures = {name: float(values[0]) for name, values in measured.items()}
        return Sample(t_s, angles[chosen, "left"], angles[chosen, "right"], measures)


def why_not_counted(partial: PartialRepetition, plan: Plan) -> str | None:
    """What the patient is told about a movement that did not count (None: nothing to say, e.g.
    one already under way when counting began)."""
    if partial.reason == "short":
        return f"Go a bit further: {partial.peak_deg:.0f} of {plan.target_deg:.0f}°"
    if partial.reason == "not_back":
        return "Come back all the way to the start before the next one"
    return None


PLACEMENT_MESSAGES = {
    "no_person": "Step into view of the camera",
    "limbs_hidden": "Move so that your whole body is in the picture",
    "too_close": "Step back a little: part of you is outside the picture",
}
VIEW_ADVICE = {  # counting goes on: the patient sees it, the advice stays short
    "turn_side": "For a more accurate angle, turn sideways to the camera",
    "turn_front": "For a more accurate angle, face the camera",
}


def _problem(pose: Pose | None, plan: Plan, uncertain: bool) -> str | None:
    """What keeps the movement from being measured: a key of PLACEMENT_MESSAGES, or
    "someone_else" (the page's `paused` says it), or None."""
    if uncertain:
        return "someone_else"
    return placement_problem(pose, plan) if pose is not None else "no_person"


def placement_problem(pose: Pose, plan: Plan) -> str | None:
    """What keeps the movement from being measured, as a key of PLACEMENT_MESSAGES, or None when
    the measured limbs (one side of them at least, for "both") are in view."""
    sides = SIDES if plan.side == "both" else (plan.side,)
    problems = [_limb_problem(pose, plan, side) for side in sides]
    return None if None in problems else problems[0]


def _limb_problem(pose: Pose, plan: Plan, side: str) -> str | None:
    needed = [*plan.exercise.angle.landmarks(side)]
    needed += [sided_landmark("shoulder", side), sided_landmark("hip", side)]
    if (pose.visibility[needed] < MIN_VISIBILITY).any():
        return "limbs_hidden"
    width, height = pose.image_size
    normalised = pose.pixels[needed] / np.array([width, height])
    if (normalised < EDGE_MARGIN).any() or (normalised > 1 - EDGE_MARGIN).any():
        return "too_close"
    return None


class ViewWatch:
    """Frame by frame, whether the camera sees the exercise's plane of movement too obliquely to
    measure it well: the key of VIEW_ADVICE saying how to turn, or None."""

    def __init__(self, exercise: ExerciseDefinition) -> None:
        self.exercise = exercise
        self.obliquity_deg = math.nan
        self._last_t: float | None = None
        self.advising = False

    def update(self, t_s: float, pose: Pose | None) -> str | None:
        if pose is not None:
            self._average(t_s, float(plane_obliquity_deg(pose.world[None], self.exercise.plane)[0]))
        if math.isfinite(self.obliquity_deg):
            limit = VIEW_ADVICE_UNTIL_DEG if self.advising else VIEW_ADVICE_FROM_DEG
            self.advising = self.obliquity_deg > limit
        if not self.advising:
            return None
        return "turn_side" if self.exercise.camera_view is CameraView.SIDE else "turn_front"

    def _average(self, t_s: float, obliquity: float) -> None:
        if not math.isfinite(obliquity):
            return
        if not math.isfinite(self.obliquity_deg) or self._last_t is None:
            self.obliquity_deg = obliquity
        else:
            weight = min(1.0, max(0.0, t_s - self._last_t) / VIEW_AVERAGE_S)
            self.obliquity_deg += weight * (obliquity - self.obliquity_deg)
        self._last_t = t_s


def _one_frame(t_s: float, pose: Pose) -> PoseSeries:
    return PoseSeries(
        t_s=np.array([t_s]),
        pixels=pose.pixels[None],
        world=pose.world[None],
        visibility=pose.visibility[None],
    )
