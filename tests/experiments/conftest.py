"""Every test under ``tests/experiments/`` carries the ``experiments`` marker, which the default ``pytest`` run
deselects (pyproject's ``addopts``): research studies are not the product. ``make test-experiments`` runs them."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before the ``-m`` selection reads the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.experiments)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny project: the tiny LM, training rows, a base_lm pointer and the tiny profile's params."""
    from tests.benchmarks.workspace import tiny_workspace

    return tiny_workspace(tmp_path_factory.mktemp("experiments_project"), keyframes=False)
