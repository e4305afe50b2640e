"""The whole of ``params.yaml`` (:class:`Params`): its sections, the checks across them, and loading.

A value whose default is another key's (``training_set.categories`` defaults to ``data.categories``, ...) is
filled here, before validation, so each value is written once in ``params.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from embodied_r.config.data import DataConfig, SplitConfig, SyntheticConfig, _sources_text
from embodied_r.config.lm import EvaluationConfig, LMConfig, TrainingSetConfig
from embodied_r.config.perception import KeyframesConfig, PerceptionConfig, ValidationConfig
from embodied_r.config.predictions import PredictionsConfig
from embodied_r.config.runtime import OrchestrationConfig, RuntimeConfig, StorageConfig, TrackingConfig
from embodied_r.config.section import _Section
from embodied_r.errors import UserError
from embodied_r.rewards.config import RewardsConfig
from embodied_r.training.config import ColdStartConfig, GrpoTrainingConfig, SFTConfig
from embodied_r.vocabulary import (
    SYNTHETIC_CATEGORIES,
    source_categories,
    unknown_categories_message,
)


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
    #: The DVC remote the data and models are shared through (``embodied-r remote`` applies it); no effect on results.
    storage: StorageConfig = StorageConfig()
    #: Each stage process's allocator and threads (not in the paper; no effect on results).
    runtime: RuntimeConfig = RuntimeConfig()
    #: Batch predictions over new videos in an inbox (not in the paper; no effect on its results).
    predictions: PredictionsConfig = PredictionsConfig()

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
