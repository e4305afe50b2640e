"""The tiny project the benchmark scripts run in."""

from pathlib import Path

import pytest

from tests.benchmarks.workspace import tiny_workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny project with its synthetic world ingested and key frames extracted (what ``perception.py`` reads)."""
    return tiny_workspace(tmp_path_factory.mktemp("bench_project"), keyframes=True)
