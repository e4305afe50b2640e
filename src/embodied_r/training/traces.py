"""Templated reasoning traces with the correct answer, for the SFT baseline (the paper's RQ7).

The paper compares GRPO with supervised fine-tuning on answers. Here each training row becomes one assistant
turn: a short, category-specific account of how the question is answered from the frames, which ends in the
correct option's text, then ``<answer>`` with its letter — the output contract GRPO's format reward asks for.
The ground truth enters only through the answer; the reasoning template is the same for every question of a
category, so the SFT model learns *which* answer from supervision, where GRPO learns it from rewards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embodied_r.data.records import parse_choices
from embodied_r.training.rows import TrainingRow
from embodied_r.training.supervised import AnswerForm, answer_completion, answer_content

#: How each task is worked out from the frames; ``{answer}`` is the correct option's text.
TRACE_TEMPLATES: dict[str, str] = {
    "object_rel_direction": (
        "I place the objects on a floor plan from where they appear in the frames and my movements between them, "
        "stand at the first object facing the second, and look where the third one is. It is {answer}."
    ),
    "object_rel_distance": (
        "I estimate where each listed object is from the frames that show it and compare their distances to the "
        "reference object. The closest one is the {answer}."
    ),
    "route_planning": (
        "I lay out the objects from the frames and follow the route leg by leg, checking the turn needed at each "
        "stop. The turns are: {answer}."
    ),
    "obj_appearance_order": (
        "I go through the frames in order and note the first frame in which each object is observed. Their order "
        "of first appearance is: {answer}."
    ),
    "landmark_position": (
        "I find the last frame that shows the object and account for my movements after it. At the end of the "
        "video the object is {answer} relative to me."
    ),
    "counterfactual": (
        "From the first frame I work out which object would be straight ahead after the alternative turn. It "
        "would be the {answer}."
    ),
    "progress_evaluation": (
        "I list my movements across the frames and match them with the steps of the instruction. The step I have "
        "just completed is: {answer}."
    ),
    "action_generation": (
        "I find where the target is relative to my current view in the last frames. To get closer I should {answer}."
    ),
}
GENERIC_TEMPLATE = (
    "I go through the frames in order, keep track of my movements and of the objects the question names, and "
    "compare the options with what I observed. The option that fits is: {answer}."
)


def reasoning_trace(row: TrainingRow, answer: AnswerForm = "letter") -> str:
    """The assistant turn for ``row``: the category's reasoning ending in the correct option, then its letter
    (or, with ``answer="option_text"``, its text again inside ``<answer>``).

    >>> row = TrainingRow(question_id="q", prompt=[], solution="B", question="Where?\\nA. left\\nB. ahead",
    ...                   choices=["A", "B"], category="landmark_position", data_source="s", scene_name="x",
    ...                   split="train", prompt_tokens=1)
    >>> reasoning_trace(row).endswith("the object is ahead relative to me.</think>\\n<answer>B</answer>")
    True
    """
    if not row.choices:
        raise ValueError(f"{row.question_id}: numeric questions have no option to reason towards")
    texts = parse_choices(row.question)
    text = texts.get(row.solution)
    if text is None:
        raise ValueError(f"{row.question_id}: the answer letter {row.solution!r} is not among the choices {texts}")
    template = TRACE_TEMPLATES.get(row.category, GENERIC_TEMPLATE)
    think = template.format(answer=text.rstrip("."))
    return answer_completion(think, answer_content(row, row.solution, answer))


def reasoning_trace_examples(rows: Sequence[TrainingRow], answer: AnswerForm = "letter") -> list[dict[str, Any]]:
    """One SFT example per multiple-choice row: its prompt and :func:`reasoning_trace`."""
    return [
        {
            "question_id": r.question_id,
            "prompt": r.prompt,
            "completion": reasoning_trace(r, answer),
            "target": r.solution,
        }
        for r in rows
        if r.choices
    ]


__all__ = ["GENERIC_TEMPLATE", "TRACE_TEMPLATES", "reasoning_trace", "reasoning_trace_examples"]
