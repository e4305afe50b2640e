"""Rows and fake judges shared by the evaluation tests."""

from __future__ import annotations

from embodied_r.rewards import ConsistencyJudge
from embodied_r.training.rows import TrainingRow


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


class ScriptedJudge(ConsistencyJudge):
    """Replies from a list in order; an exception instance in the list is a failed request."""

    name = "scripted"

    def __init__(self, replies: list[str | BaseException]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[list[dict[str, str]]] = []

    def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
        self.requests.extend(conversations)
        out, self.replies = self.replies[: len(conversations)], self.replies[len(conversations) :]
        return out
