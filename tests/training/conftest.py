"""Training rows for the GRPO tests (nothing from a model hub): :func:`embodied_r.models.tiny.write_tiny_rows`.

The tiny LM they train is the session fixture ``tiny_lm`` of ``tests/conftest.py``:
:func:`embodied_r.models.tiny.build_tiny_lm` (also the ``tiny`` profile's LM).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embodied_r.models.tiny import write_tiny_rows

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight training rows as JSONL."""
    return write_tiny_rows(tmp_path_factory.mktemp("rows") / "train.jsonl")
