"""The static security checks keep their promises: bandit finds nothing in the project's code,
every finding accepted with `# nosec` names its test and says why where it stands, and lint
(hence CI) runs bandit and ruff's security rules."""

import configparser
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANDIT = Path(sys.executable).parent / "bandit"
# "# nosec B101 # why": the tests it silences, then the reason in a comment of its own.
JUSTIFIED_NOSEC = re.compile(r"#\s*nosec\s+B\d{3}(?:\s*,\s*B\d{3})*\s+#\s*\S.{9,}")


def scanned_files() -> Iterator[Path]:
    """The Python files bandit scans: all of them but what .bandit excludes."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".bandit")
    excluded = [ROOT / path for path in config["bandit"]["exclude"].split(",")]
    for path in ROOT.rglob("*.py"):
        if not any(path.is_relative_to(folder) for folder in excluded):
            yield path


def test_bandit_finds_nothing_in_the_project_code() -> None:
    done = subprocess.run(
        [str(BANDIT), "--quiet", "--recursive", ".", "--format", "custom"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout


def test_bandit_scans_the_apps_and_leaves_out_only_tests_and_generated_files() -> None:
    files = {path.relative_to(ROOT).parts[0] for path in scanned_files()}
    assert {"analysis", "patients", "sessions", "reports", "rehab", "bench"} <= files
    assert not files & {"tests", ".venv", ".uv", "var"}


def test_every_nosec_names_its_tests_and_gives_a_reason() -> None:
    unjustified = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in scanned_files()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"#\s*nosec\b", line) and not JUSTIFIED_NOSEC.search(line)
    ]
    assert unjustified == []


def test_lint_runs_bandit_and_ruff_with_its_security_rules() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\nlint: install\n")[1].split("\n\n")[0]
    assert "bandit --quiet --recursive ." in recipe
    assert "ruff check ." in recipe
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in ruff["select"]
    assert "make lint" in (ROOT / ".ci" / "run").read_text()
