"""Data-quality suites (Great Expectations) over the perception outputs.

Great Expectations is imported lazily, on the first validation, so importing this package is cheap.
"""

from embodied_r.validation.config import ValidationConfig
from embodied_r.validation.frames import PerceptionTables, build_tables
from embodied_r.validation.suites import (
    SUITE_DESCRIPTIONS,
    SUITE_NAMES,
    ExpectationOutcome,
    FailingExample,
    PerceptionValidator,
    SuiteOutcome,
    run_suite,
    run_suites,
)

__all__ = [
    "SUITE_DESCRIPTIONS",
    "SUITE_NAMES",
    "ExpectationOutcome",
    "FailingExample",
    "PerceptionTables",
    "PerceptionValidator",
    "SuiteOutcome",
    "ValidationConfig",
    "build_tables",
    "run_suite",
    "run_suites",
]
