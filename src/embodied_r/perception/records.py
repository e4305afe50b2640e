"""The perception output contract: what the VLM said about each key frame of a sample.

One :class:`DescribedSample` per question (the paper's per-(video, question) mode); in the
per-video mode one description of a video serves all its questions and is copied into each
of their samples, with ``mode="per_video"``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FrameDescription(BaseModel):
    """The VLM's text for one key frame.

    Frame 0 has no action. For later frames the answer is parsed into the action taken
    (one of :data:`embodied_r.vocabulary.ACTIONS`, or ``None`` when it cannot be parsed) and
    the observation (points 2 and 3). When parsing fails the whole text is the observation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0, description="Frame number in the video.")
    action: str | None = None
    observation: str
    raw: str = Field(description="The VLM's answer as returned.")


class DescribedSample(BaseModel):
    """One question with the descriptions of its video's key frames."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: str
    video_id: str
    scene_name: str
    category: str
    split: Literal["train", "val", "test"] | None
    question: str
    answer: str
    choices: list[str] = Field(description="Option letters of the question.")
    data_source: str
    keyframe_indices: list[int]
    frames: list[FrameDescription]
    mode: Literal["per_question", "per_video"]
    backend: str
    model: str
    prompt_version: str
