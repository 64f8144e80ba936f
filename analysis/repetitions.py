"""What one repetition becomes: numbers only, in clinical degrees and seconds from the session's
start. The repetition analysis produces these; sessions store them."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from analysis.exercises import furthest, peak_end


@dataclass(frozen=True)
class RepetitionMetrics:
    set_number: int
    index: int  # 1-based within its set
    side: str  # "left", "right" or "both"
    start_s: float
    end_s: float
    min_deg: float
    max_deg: float
    rom_deg: float
    duration_s: float
    peak_velocity_dps: float
    concentric_s: float | None = None
    eccentric_s: float | None = None
    hold_s: float | None = None  # longest time held in the target band
    symmetry_pct: float | None = None  # 100 x smaller / larger ROM of the two sides, when both seen
    form_flags: list[str] = field(default_factory=list)
    quality: str = ""  # "good", "fair" or "poor" (analysis.quality); "" when not graded
    quality_reasons: list[str] = field(default_factory=list)
    trace_deg: list[float] = field(default_factory=list)  # downsampled angle over the repetition
    # Each compared joint's angle over the repetition, downsampled like trace_deg: what a
    # reference movement is compared with (analysis.similarity); not stored.
    joint_traces_deg: dict[str, list[float]] = field(default_factory=dict)


class SidedRep(Protocol):
    """What a per-side summary reads of a repetition (a record, or a stored row)."""

    @property
    def side(self) -> str: ...
    @property
    def min_deg(self) -> float: ...
    @property
    def max_deg(self) -> float: ...
    @property
    def rom_deg(self) -> float: ...


@dataclass(frozen=True)
class SideSummary:
    """A session's repetitions on one side."""

    side: str
    reps: int
    mean_rom_deg: float
    best_peak_deg: float  # the angle reached furthest towards the target


def per_side(reps: Sequence[SidedRep], direction: int) -> list[SideSummary]:
    """Left before right; `direction` is +1 when the angle grows towards the target."""
    summaries = []
    for side in sorted({rep.side for rep in reps}):
        own = [rep for rep in reps if rep.side == side]
        peaks = [peak_end(direction, rep.min_deg, rep.max_deg) for rep in own]
        summaries.append(
            SideSummary(
                side=side,
                reps=len(own),
                mean_rom_deg=round(sum(rep.rom_deg for rep in own) / len(own), 1),
                best_peak_deg=furthest(direction, peaks),
            )
        )
    return summaries


def symmetry_pct(sides: Sequence[SideSummary]) -> float | None:
    """100 x the smaller mean range of motion of left and right over the larger (100: equal)."""
    roms = {summary.side: summary.mean_rom_deg for summary in sides}
    if not {"left", "right"} <= roms.keys() or max(roms["left"], roms["right"]) <= 0:
        return None
    return round(100 * min(roms["left"], roms["right"]) / max(roms["left"], roms["right"]), 1)
