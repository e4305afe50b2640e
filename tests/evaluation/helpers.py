"""Rows and the fake judge shared by the evaluation tests."""

from __future__ import annotations

from embodied_r.training.rows import TrainingRow
from tests.rewards.helpers import ScriptedJudge

__all__ = ["ScriptedJudge", "make_row"]


def make_row(
    qid: str,
    solution: str = "B",
    *,
    category: str = "object_rel_direction",
    choices: tuple[str, ...] = ("A", "B", "C", "D"),
) -> TrainingRow:
    """One evaluation row; ``choices=()`` makes a numeric row."""
    question = "Which way is the door? A. left B. right C. ahead D. behind" if choices else "How many chairs?"
    return TrainingRow(
        question_id=qid,
        prompt=[{"role": "user", "content": f"Frame 0: a door. {question}"}],
        solution=solution,
        question=question,
        choices=list(choices),
        category=category,
        data_source="synthetic",
        scene_name="scene0",
        split="test",
        prompt_tokens=20,
    )
