"""Key frames, perception (the VLM) and the blocking data checks on its outputs (``validation``)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from embodied_r.config.section import _Section


class KeyframesConfig(_Section):
    """Key-frame extraction (reference §1); every default is the paper's value."""

    sample_fps: float = Field(1.0, gt=0, description="Sampling rate: every round(fps/sample_fps)-th frame.")
    orb_features: int = Field(500, ge=10)
    min_matches: int = Field(10, ge=4, description="A homography is fitted only with more matches than this.")
    ransac_reproj_threshold: float = Field(5.0, gt=0)
    overlap_threshold: float = Field(0.5, gt=0, lt=1, description="Keep a frame when its overlap is below this.")
    min_frames: int = Field(4, ge=1)
    max_frames: int = Field(32, ge=2)
    decode_chunk: int = Field(32, ge=1, description="Frames decoded per batch (memory bound).")
    max_failed_share: float = Field(
        0.0, ge=0, le=1, description="Share of videos that may fail (reported, dropped later) before the run fails."
    )
    sample_rounding: Literal["round", "floor"] = Field(
        "round",
        description="Sampling step: round(fps/sample_fps) half up (reference, default) or int() (official code: "
        "29.97 fps gives 29).",
    )
    keep_last: bool = Field(
        True, description="Always keep the last sampled frame as a key frame (official code; reason 'last')."
    )
    clamp_spacing: Literal["uniform", "official"] = Field(
        "uniform",
        description="How clamping spaces frames: 'uniform' = positions round_half_up(i*(n-1)/(m-1)) (reference, "
        "default); 'official' = first, last and 1+round(i*(n-2)/(m-2)) as in the official constrained_sampling.",
    )
    decode_threads: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="decord decoder threads (0 = FFmpeg's choice); 'auto' = 2 where the GOP forces decoding nearly "
        "every frame (long-GOP H.264), else 1. No effect on the frames.",
    )
    max_side: int | None = Field(
        None, ge=32, description="Shrink frames so the longer side is at most this; None = full frames (paper)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> KeyframesConfig:
        if self.min_frames > self.max_frames:
            raise ValueError(f"keyframes.min_frames ({self.min_frames}) > keyframes.max_frames ({self.max_frames})")
        return self


class PerceptionConfig(BaseModel):
    """How key frames become text: which VLM, which prompts mode, generation and oracle-noise settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["oracle", "openai", "transformers"] = Field(
        "oracle",
        description="oracle: ground-truth descriptions of the embedded world; openai: any OpenAI-compatible "
        "chat-completions server (vLLM, DashScope); transformers: a local Hugging Face VLM.",
    )
    mode: Literal["per_question", "per_video"] = Field(
        "per_question",
        description="per_question: one description per (video, question) as in the paper; per_video: one "
        "description per video naming all its questions' objects (far fewer calls; not in the paper).",
    )
    model: str = Field(
        "oracle",
        min_length=1,
        description='Model id, e.g. "Qwen/Qwen2.5-VL-72B-Instruct" (openai / transformers; a local folder '
        'also works for transformers); "oracle" for the oracle backend.',
    )
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint (openai backend).")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        min_length=1,
        description="Name of the environment variable holding the API key; the key itself never goes into "
        "params or logs. Unset with a local base_url (vLLM) → the placeholder key 'EMPTY'.",
    )
    temperature: float = Field(0.1, ge=0.0, le=2.0, description="Sampling temperature (paper's tool: 0.1); 0 = greedy.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling; None = the server's default.")
    max_tokens: int = Field(512, ge=1, le=16384, description="Maximum tokens of one answer.")
    concurrency: int = Field(8, ge=1, le=64, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0.0, le=3600.0, description="Timeout of one request (seconds).")
    max_retries: int = Field(
        4, ge=0, le=20, description="Retries on timeouts, 429 and 5xx (the openai SDK's exponential backoff)."
    )
    image_max_side: int | None = Field(
        1024, ge=32, le=8192, description="Key frames are downscaled so the longer side is at most this; None = as is."
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of re-encoded (downscaled) uploads.")
    trust_remote_code: bool = Field(False, description="transformers: allow model code from the checkpoint.")
    device: str = Field("cpu", description='transformers: "cpu", "cuda", "cuda:1" or "auto" (accelerate device_map).')
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="transformers: weights dtype.")
    miss_object_prob: float = Field(
        0.1, ge=0.0, le=1.0, description="oracle: chance that a visible object is left out of a description."
    )
    wrong_color_prob: float = Field(
        0.05, ge=0.0, le=1.0, description="oracle: chance that an object's colour is wrong."
    )
    wrong_action_prob: float = Field(
        0.1, ge=0.0, le=1.0, description="oracle: chance that point 1 names a wrong action."
    )
    noise_seed: int = Field(0, ge=0, description="oracle: seed of the noise (per video, frame and question).")
    cache_dir: str = Field(
        ".cache/perception",
        description="Content-addressed answer cache, relative to the project root. Outside data/ on purpose: "
        "DVC deletes stage outputs before a rerun, the cache must survive to make resume free.",
    )
    max_failed_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of questions allowed to fail before the step fails (orchestration)."
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Times one request is asked across runs while its answer fails the per-record data checks "
        "(refusal, blank, description length; validation.*): a failing answer is kept for the blocking checks "
        "to show and re-asked on the next run instead of served from the cache; after this many answers it is "
        "not asked again and its questions go to failures.jsonl. Not in the paper (no data checks there); "
        "1 = never re-ask.",
    )

    @model_validator(mode="after")
    def _check_model(self) -> PerceptionConfig:
        if self.backend == "oracle" and self.model != "oracle":
            raise ValueError(f'perception.model must be "oracle" with the oracle backend, got {self.model!r}')
        if self.backend != "oracle" and self.model == "oracle":
            raise ValueError(
                f'perception.model is "oracle" but backend is {self.backend!r}: name the VLM, '
                'e.g. "Qwen/Qwen2.5-VL-72B-Instruct"'
            )
        return self

    def generation_settings(self) -> dict[str, object]:
        """The settings that change an answer for this backend (part of every cache key)."""
        if self.backend == "oracle":
            return {
                "miss_object_prob": self.miss_object_prob,
                "wrong_color_prob": self.wrong_color_prob,
                "wrong_action_prob": self.wrong_action_prob,
                "noise_seed": self.noise_seed,
            }
        settings: dict[str, object] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "image_max_side": self.image_max_side,
        }
        if self.backend == "openai":
            settings["jpeg_quality"] = self.jpeg_quality
        else:
            settings["dtype"] = self.dtype
        return settings


#: Case-insensitive regexes of a VLM refusing or failing to look at the images.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI[’']m sorry\b",
    r"\bI am sorry\b",
    r"\bI (cannot|can[’']t|am unable to|am not able to) (help|assist|comply)\b",
    r"\bas an AI\b",
    r"\bI (cannot|can[’']t|am unable to|am not able to|do not|don[’']t) (see|view|analy[sz]e|access|process) "
    r"(the |these |this |any )?(image|images|frame|frames|picture|pictures|video)\b",
    r"\bno (image|images|frames?) (was|were|has been|have been) (provided|attached|shared)\b",
)


class ValidationConfig(BaseModel):
    """What the perception outputs must satisfy to go on to reasoning and training.

    >>> ValidationConfig(min_keyframes=4, max_keyframes=32).max_unparsable_action_share
    0.2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_keyframes: int = Field(
        4, ge=1, description="Fewest key frames a sample may have (the lower clamp bound of the key-frame stage)."
    )
    max_keyframes: int = Field(
        32, ge=1, description="Most key frames a sample may have (the upper clamp bound of the key-frame stage)."
    )
    max_unparsable_action_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description=(
            "Largest share, over ALL non-first frames of the batch, whose action could not be parsed "
            "(action is None). Overall rather than per sample: a 4-frame sample has 3 actions, so one "
            "miss is already 33% and a per-sample gate would block on VLM noise."
        ),
    )
    max_unparsable_action_share_per_sample: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "Optional per-sample gate on the same share (e.g. 0.5; 0.99 catches only samples with no parsed "
            "action at all). None turns the per-sample expectation off."
        ),
    )
    min_description_chars: int = Field(
        20, ge=1, description="Fewest characters of a frame's observation (stripped), the text the LM reads."
    )
    max_description_chars: int = Field(
        4000, ge=1, description="Most characters of a frame's observation (stripped); longer means a runaway VLM."
    )
    refusal_patterns: tuple[str, ...] = Field(
        DEFAULT_REFUSAL_PATTERNS,
        description=(
            "Regexes (matched case-insensitively, anywhere) that mark a frame's raw VLM answer as a refusal "
            "or as a model that did not see the images."
        ),
    )
    max_failing_examples: int = Field(
        10, ge=0, description="Failing rows kept per expectation, identified by question_id (or scene)."
    )

    @field_validator("refusal_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"refusal pattern {pattern!r} is not a valid regex: {err}") from None
        return patterns

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ValidationConfig:
        if self.min_keyframes > self.max_keyframes:
            raise ValueError(f"min_keyframes ({self.min_keyframes}) > max_keyframes ({self.max_keyframes})")
        if self.min_description_chars > self.max_description_chars:
            raise ValueError(
                f"min_description_chars ({self.min_description_chars}) > "
                f"max_description_chars ({self.max_description_chars})"
            )
        return self

    def refusal_regexes(self) -> list[str]:
        """The refusal patterns with an inline case-insensitive flag, as GX and ``re`` take them."""
        return [f"(?i){pattern}" for pattern in self.refusal_patterns]
