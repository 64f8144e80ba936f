"""What one repetition becomes: numbers only, in clinical degrees and seconds from the session's
start. The repetition analysis produces these; sessions store them."""

from dataclasses import dataclass, field


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
    trace_deg: list[float] = field(default_factory=list)  # downsampled angle over the repetition
