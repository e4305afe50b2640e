"""What the default ``pytest`` run (``make test``) leaves out: the research studies' tests (``tests/experiments``),
which ``make test-experiments`` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _collected(*args: str) -> str:
    """The ids ``pytest --collect-only`` lists with the project's own settings (pyproject's ``addopts``)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 5), result.stdout[-2000:] + result.stderr[-2000:]  # 5: nothing selected
    return result.stdout


@pytest.mark.slow
def test_the_experiments_tests_are_left_out_by_default_and_run_by_their_marker() -> None:
    default = _collected("tests/experiments")
    assert "tests/experiments/" not in default and "deselected" in default
    selected = _collected("-m", "experiments", "tests/experiments")  # what `make test-experiments` runs
    assert "tests/experiments/test_learning.py::test_by_quarter_of_a_short_run_leaves_empty_quarters_none" in selected
    assert "tests/experiments/test_experiment_scripts.py::test_every_experiment_has_a_smoke_run" in selected
