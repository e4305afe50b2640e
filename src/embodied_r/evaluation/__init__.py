"""Evaluation of the reasoning LM (reference §6): greedy generation, pure scoring, reports, promotion.

* :mod:`.metrics` — per-sample scoring and aggregates (pooled accuracy with bootstrap CI, per category, MRA).
* :mod:`.generate` — batched greedy decoding, think–answer consistency by a judge, :func:`evaluate_model`.
* :mod:`.report` — results JSON with provenance, per-sample JSONL, markdown table.
* :mod:`.plots` — per-category accuracy bars and training curves as deterministic PNGs.
* :mod:`.promotion` — the ``champion`` alias in the MLflow registry (import it explicitly; it needs mlflow).
"""

from typing import Any

from embodied_r.evaluation.metrics import aggregate, bootstrap_ci, chance_level, score_sample

#: Loaded on first use: :mod:`.generate` imports torch, which the stages that only read results (and every stage's
#: process, through the Dagster definitions) need not load (issue 40: start-up cost).
_GENERATE_NAMES = ("EvalResult", "compare", "evaluate_model", "generate_completions")


def __getattr__(name: str) -> Any:
    if name in _GENERATE_NAMES:
        from embodied_r.evaluation import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EvalResult",
    "aggregate",
    "bootstrap_ci",
    "chance_level",
    "compare",
    "evaluate_model",
    "generate_completions",
    "score_sample",
]
