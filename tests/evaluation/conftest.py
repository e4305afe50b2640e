"""Fixtures of the evaluation tests: a tiny offline Llama and five test rows, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from embodied_r.training.dataset import read_training_rows
from tests.training.conftest import build_tiny_lm, write_tiny_rows


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("eval_tiny_lm"))


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list:
    return read_training_rows(write_tiny_rows(tmp_path_factory.mktemp("eval_rows") / "test.jsonl", n=5, split="test"))
