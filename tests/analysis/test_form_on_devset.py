"""Form flags on the dev set's real clips (../shared/data/devset, skipped without it).

Every clip is counted offline as analyze_video counts it, with poses from bench/rep_accuracy.py's
cache (var/pose-cache; a first run computes them, which takes minutes). The dev set is ordinary
exercise: its clean repetitions must raise no posture flag, and its one clear faulty example, the
swinging curls its notes describe, must be flagged. The target-shortfall rules (shallow_depth,
...) are left out: they judge the range reached against the default target, and the dev set
holds shallow repetitions on purpose.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from analysis.exercises import BY_SLUG
from analysis.form import RULES, Judgement

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT.parent / "shared" / "data" / "devset" / "labels.json"
pytestmark = pytest.mark.skipif(not LABELS.is_file(), reason="needs ../shared/data/devset")

POSTURE = {code for code, rule in RULES.items() if rule.judgement is not Judgement.SHORTFALL}
SWINGING_CURLS = "bajpaidevharsh__bicep_curl.mp4"
# Where the form is not clean, from the clip's note or its frames: (from s, to s, faults seen).
NOT_CLEAN = {
    # Note: "Reps 1-3 (0-8.5 s) are swinging 'wrong form' curls with the dumbbells travelling
    # far forward", then correct ones.
    SWINGING_CURLS: (0.0, 8.5, {"elbow_drift", "trunk_swing"}),
    # The frames: the clip opens with the hips piked while he settles into the plank.
    "Divyansh3021__perfect_pushup_2.mp4": (0.0, 1.0, {"hip_pike"}),
}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("form_flags", ROOT / "bench" / "form_flags.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["form_flags"] = module  # for the bench's worker processes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def counted(bench: ModuleType) -> dict[str, list]:
    """Each clip's repetitions, counted offline."""
    reps = {}
    for clip in bench.load_clips(LABELS):
        poses = bench.offline_poses(clip.path, True)
        _, clip_reps, _ = bench.count_repetitions(poses, BY_SLUG[clip.exercise], side=clip.side)
        reps[clip.path.name] = clip_reps
    return reps


def test_clean_repetitions_raise_no_posture_flag(counted: dict[str, list]) -> None:
    false_flags = []
    for name, reps in counted.items():
        start, end, seen = NOT_CLEAN.get(name, (0.0, 0.0, set()))
        for rep in reps:
            allowed = seen if rep.start_s < end and rep.end_s > start else set()
            unexpected = set(rep.form_flags) & POSTURE - allowed
            false_flags += [f"{name} rep {rep.index}: {code}" for code in sorted(unexpected)]
    assert false_flags == []


def test_the_swinging_curls_are_flagged_and_the_correct_ones_are_not(
    counted: dict[str, list],
) -> None:
    _, end, _ = NOT_CLEAN[SWINGING_CURLS]
    swinging = [rep for rep in counted[SWINGING_CURLS] if rep.end_s <= end]
    correct = [rep for rep in counted[SWINGING_CURLS] if rep.start_s > end]
    assert len(swinging) == 3 and correct
    assert sum("elbow_drift" in rep.form_flags for rep in swinging) >= 2
    assert all(not set(rep.form_flags) & POSTURE for rep in correct)


def test_the_bench_prints_a_line_per_rule_and_the_summary_last(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "labels.json"
    clip = LABELS.parent / "kanatovaai__6.mp4"  # a short side-view squat
    one.write_text(f'[{{"file": "{clip}", "exercise": "squat", "reps": 1}}]')
    assert bench.main(["--labels", str(one), "--jobs", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rules = [line.split()[0] for line in lines[1:] if line.split() and line.split()[0] in RULES]
    assert rules == ["trunk_lean", "knee_valgus", "heels_rise", "shallow_depth"]
    assert lines[-1].startswith("form flags offline ") and "1 clips" in lines[-1]
