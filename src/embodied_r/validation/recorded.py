"""The data-check outcomes recorded next to the descriptions (``data/descriptions/checks.json``).

The blocking Great Expectations suites run as Dagster asset checks; across separate runs (one DVC stage each) their
outcomes are also written here, so the training set can refuse data whose checks failed and promotion can say so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embodied_r.data.records import write_json

if TYPE_CHECKING:
    from embodied_r.config import Params
    from embodied_r.layout import Layout
    from embodied_r.validation.suites import SuiteOutcome

CHECKS_FILE = "checks.json"


@dataclass(frozen=True)
class DataChecks:
    """Every suite's outcome over the described samples, and the VLM answers the per-record checks refused."""

    outcomes: list[SuiteOutcome]
    invalid_answers: list[dict[str, Any]]
    note: str | None  # which refused answers are re-asked next run and which stay failing (None: none refused)


def run_data_checks(params: Params, layout: Layout) -> DataChecks:
    """Run every Great Expectations suite once over ``samples.jsonl`` (one shared GX context); record the outcomes
    in ``checks.json``."""
    from embodied_r.perception.stage import SAMPLES, read_samples
    from embodied_r.validation import PerceptionValidator, build_tables
    from embodied_r.validation.answer_checks import INVALID_ANSWERS, invalid_answers_note, read_invalid_answers

    out = layout.descriptions
    tables = build_tables(read_samples(out / SAMPLES), params.validation.refusal_patterns)
    outcomes = PerceptionValidator(params.validation).run(tables)
    invalid = read_invalid_answers(out / INVALID_ANSWERS)
    write_check_outcomes(out, outcomes)
    return DataChecks(outcomes=outcomes, invalid_answers=invalid, note=invalid_answers_note(invalid) or None)


def write_check_outcomes(descriptions: Path, outcomes: Sequence[SuiteOutcome]) -> Path:
    """Record each suite's success and failed expectations in ``descriptions/checks.json``."""
    path = Path(descriptions) / CHECKS_FILE
    write_json(path, {o.name: {"success": o.success, "failed": [e.description for e in o.failed]} for o in outcomes})
    return path


def failed_checks(descriptions: Path) -> list[str]:
    """The names of the suites recorded as failed, sorted (reads ``checks.json``; it must exist)."""
    checks = json.loads((Path(descriptions) / CHECKS_FILE).read_text())
    return sorted(name for name, outcome in checks.items() if not outcome["success"])
