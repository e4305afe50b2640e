"""Fixtures of the evaluation tests: five test rows, built once per module (the tiny LM: ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from embodied_r.models.tiny import write_tiny_rows
from embodied_r.training.dataset import read_training_rows


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list:
    return read_training_rows(write_tiny_rows(tmp_path_factory.mktemp("eval_rows") / "test.jsonl", n=5, split="test"))
