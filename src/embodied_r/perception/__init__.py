"""Perception (reference §2–3): key frames → question-conditioned text, and the LM's input built from it.

>>> from embodied_r.perception import PerceptionConfig, describe_samples, build_messages
"""

from embodied_r.perception.backends import (
    DescribeRequest,
    PerceptionError,
    VisionLanguageModel,
    VLMAnswer,
    make_backend,
)
from embodied_r.perception.cache import DescriptionCache, cache_key
from embodied_r.perception.config import PerceptionConfig
from embodied_r.perception.describe import DescribeOutcome, describe_samples
from embodied_r.perception.lm_prompt import SYSTEM_PROMPT, build_messages, user_message, video_text
from embodied_r.perception.parse import ParsedAnswer, normalize_action, parse_answer
from embodied_r.perception.prompts import PROMPT_VERSION, first_frame_prompt, frame_prompt, later_frame_prompt
from embodied_r.perception.records import DescribedSample, FrameDescription

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "DescribeOutcome",
    "DescribeRequest",
    "DescribedSample",
    "DescriptionCache",
    "FrameDescription",
    "ParsedAnswer",
    "PerceptionConfig",
    "PerceptionError",
    "VLMAnswer",
    "VisionLanguageModel",
    "build_messages",
    "cache_key",
    "describe_samples",
    "first_frame_prompt",
    "frame_prompt",
    "later_frame_prompt",
    "make_backend",
    "normalize_action",
    "parse_answer",
    "user_message",
    "video_text",
]
