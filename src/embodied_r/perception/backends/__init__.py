"""VLM backends behind one interface: ``oracle`` (ground truth), ``openai`` (any OpenAI-compatible server),
``transformers`` (a local Hugging Face VLM). Heavy imports happen only when a backend is made."""

from __future__ import annotations

from embodied_r.perception.backends.base import DescribeRequest, PerceptionError, VisionLanguageModel, VLMAnswer
from embodied_r.perception.config import PerceptionConfig


def make_backend(cfg: PerceptionConfig) -> VisionLanguageModel:
    """The backend named by ``cfg.backend``, configured from ``cfg``.

    >>> make_backend(PerceptionConfig()).name
    'oracle'
    """
    if cfg.backend == "oracle":
        from embodied_r.perception.backends.oracle import OracleBackend

        return OracleBackend(cfg)
    if cfg.backend == "openai":
        from embodied_r.perception.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.backend == "transformers":
        from embodied_r.perception.backends.transformers_backend import TransformersBackend

        return TransformersBackend(cfg)
    raise ValueError(f"unknown perception backend {cfg.backend!r}")


__all__ = ["DescribeRequest", "PerceptionError", "VLMAnswer", "VisionLanguageModel", "make_backend"]
