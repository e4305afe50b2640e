"""The row contract shared by the training set, GRPO training and evaluation.

Every row has the same shape whatever the data source (verl's lesson): the chat prompt, the
ground truth and what reward code and reports need to dispatch and group on.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainingRow(BaseModel):
    """One question ready for the LM.

    ``prompt`` is the conversational input TRL expects (``[{"role": "system", ...}, {"role": "user", ...}]``),
    built by :func:`embodied_r.perception.lm_prompt.build_messages`. ``question`` is the question with
    its lettered choices alone (no video text): the consistency judge sees only that and the
    ``<think>`` text (reference §5). ``solution`` is the answer letter (or number for numeric rows).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: str
    prompt: list[dict[str, str]]
    solution: str
    question: str
    choices: list[str] = Field(description="Option letters; empty for numeric questions.")
    category: str
    data_source: str
    scene_name: str
    split: str
    prompt_tokens: int = Field(ge=0, description="Length of the chat-templated prompt in the LM's tokens.")
