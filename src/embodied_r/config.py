"""Typed, validated configuration loaded from ``params.yaml``.

``params.yaml`` is the single source of configuration for Dagster and DVC. Every section
is a pydantic model that forbids unknown keys, so a typo fails loudly with the key's path
and the keys that are allowed. Defaults are the paper's values; where the project deviates
(for CPU, or because the official code has a flaw) the field says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from embodied_r.vocabulary import TASK_CATEGORIES


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(_Section):
    """The embedded synthetic egocentric world (the default dataset)."""

    seed: int = Field(0, ge=0, description="Seed for scenes, trajectories and questions.")
    scenes: int = Field(10, ge=1, le=10_000)
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
    categories: tuple[str, ...] = Field(TASK_CATEGORIES, description="Task categories to generate.")

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        lo, hi = self.objects_per_scene
        if not 2 <= lo <= hi <= 40:
            raise ValueError(f"objects_per_scene must satisfy 2 <= low <= high <= 40, got {self.objects_per_scene}")
        unknown = sorted(set(self.categories) - set(TASK_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; allowed: {list(TASK_CATEGORIES)}")
        return self


class DataConfig(_Section):
    """Which dataset to ingest and which of its questions to keep."""

    source: Literal["embedded", "official", "urbanvideo", "vsibench"] = "embedded"
    #: For ``official``: the intermediate JSON; ``urbanvideo``: MCQ.parquet; ``vsibench``: the parquet.
    annotations: str | None = None
    #: Folder of videos (or, for VSI-Bench, of per-source folders or zips).
    videos_dir: str | None = None
    #: Task categories kept (the paper keeps eight). Numeric VSI tasks only when listed here.
    categories: tuple[str, ...] = TASK_CATEGORIES
    max_questions: int | None = Field(None, ge=1, description="Cap on questions, for quick runs.")

    @model_validator(mode="after")
    def _paths_for_real_data(self) -> DataConfig:
        if self.source != "embedded" and (self.annotations is None or self.videos_dir is None):
            raise ValueError(f"data.source={self.source!r} needs data.annotations and data.videos_dir")
        return self


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


class TrackingConfig(_Section):
    """MLflow tracking and registry."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: str = "mlruns/artifacts"
    experiment: str = "embodied-r"
    registered_model: str = "embodied-r-lm"


class Params(_Section):
    """The whole of ``params.yaml``."""

    profile: str = Field("demo", description="A name for this configuration, logged with every run.")
    data_dir: str = Field("data", description="Root of all pipeline outputs (versioned by DVC).")
    synthetic: SyntheticConfig = SyntheticConfig()
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    keyframes: KeyframesConfig = KeyframesConfig()
    tracking: TrackingConfig = TrackingConfig()


class ParamsError(ValueError):
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
            lines.append(f"  - {key}: {err['msg']}{got_text}")
    return "\n".join(lines)


def parse_params(data: dict[str, Any] | None, source: str = "params") -> Params:
    """Validate a params mapping, raising :class:`ParamsError` with readable messages."""
    try:
        return Params.model_validate(data or {})
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Load and validate ``params.yaml``; ``overrides`` are dotted keys (``synthetic.scenes``)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file (run from the project root or pass --params)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
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
