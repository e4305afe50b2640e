"""Training rows for the GRPO tests (nothing from a model hub).

The tiny LM they train is the session fixture ``tiny_lm`` of ``tests/conftest.py``:
:func:`embodied_r.models.tiny.build_tiny_lm` (also the ``tiny`` profile's LM).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_tiny_rows(path: Path, n: int = 8, split: str = "train") -> Path:
    """``n`` rows of the :class:`~embodied_r.training.rows.TrainingRow` contract as JSONL."""
    from embodied_r.training.rows import TrainingRow

    rows = []
    for i in range(n):
        question = f"Question: which object is closer? A. chair B. table C. door D. lamp ({i})"
        rows.append(
            TrainingRow(
                question_id=f"q{i}",
                prompt=[
                    {"role": "system", "content": "Think in <think> </think>, answer in <answer> </answer>."},
                    {"role": "user", "content": f"Frame 0: Observe: a red chair to the left. {question}"},
                ],
                solution="ABCD"[i % 4],
                question=question,
                choices=["A", "B", "C", "D"],
                category="object_rel_distance",
                data_source="synthetic",
                scene_name=f"scene{i % 2}",
                split=split,
                prompt_tokens=40,
            )
        )
    path.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight training rows as JSONL."""
    return write_tiny_rows(tmp_path_factory.mktemp("rows") / "train.jsonl")
