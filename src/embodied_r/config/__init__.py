"""Typed, validated configuration loaded from ``params.yaml``.

``params.yaml`` is the single source of configuration for Dagster and DVC. Every section
is a pydantic model that forbids unknown keys, so a typo fails loudly with the key's path
and the keys that are allowed. Defaults are the paper's values; where the project deviates
(for CPU, or because the official code has a flaw) the field says so.

One module per part of the pipeline: ``data.py`` (``synthetic``, ``data``, ``split``), ``perception.py``
(``keyframes``, ``perception``, ``validation``), ``lm.py`` (``lm``, ``training_set``, ``evaluation``),
``runtime.py`` (``tracking``, ``orchestration``, ``runtime``); the reward and training sections live beside their code
(:mod:`embodied_r.rewards.config`, :mod:`embodied_r.training.config`), torch-free. ``params.py`` holds the
whole (:class:`Params`), the checks across sections and the loading (:func:`load_params`, :func:`parse_params`).
"""

from embodied_r.config.data import DataConfig, SourceConfig, SplitConfig, SyntheticConfig
from embodied_r.config.lm import EvaluationConfig, LMConfig, TrainingSetConfig
from embodied_r.config.params import (
    Params,
    ParamsError,
    format_validation_error,
    load_params,
    parse_params,
    read_yaml_mapping,
    set_dotted,
)
from embodied_r.config.perception import DEFAULT_REFUSAL_PATTERNS, KeyframesConfig, PerceptionConfig, ValidationConfig
from embodied_r.config.predictions import PredictionsConfig
from embodied_r.config.runtime import OrchestrationConfig, RuntimeConfig, StorageConfig, TrackingConfig
from embodied_r.rewards.config import RewardsConfig
from embodied_r.training.config import ColdStartConfig, GrpoTrainingConfig, SFTConfig

__all__ = [
    "DEFAULT_REFUSAL_PATTERNS",
    "ColdStartConfig",
    "DataConfig",
    "EvaluationConfig",
    "GrpoTrainingConfig",
    "KeyframesConfig",
    "LMConfig",
    "OrchestrationConfig",
    "Params",
    "ParamsError",
    "PerceptionConfig",
    "PredictionsConfig",
    "RewardsConfig",
    "RuntimeConfig",
    "SFTConfig",
    "SourceConfig",
    "SplitConfig",
    "StorageConfig",
    "SyntheticConfig",
    "TrackingConfig",
    "TrainingSetConfig",
    "ValidationConfig",
    "format_validation_error",
    "load_params",
    "parse_params",
    "read_yaml_mapping",
    "set_dotted",
]
