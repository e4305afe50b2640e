"""Evaluation of the reasoning LM (reference §6): greedy generation, pure scoring, reports, promotion.

* :mod:`.metrics` — per-sample scoring and aggregates (pooled accuracy with bootstrap CI, per category, MRA).
* :mod:`.generate` — batched greedy decoding, think–answer consistency by a judge, :func:`evaluate_model`.
* :mod:`.report` — results JSON with provenance, per-sample JSONL, markdown table.
* :mod:`.plots` — per-category accuracy bars and training curves as deterministic PNGs.
* :mod:`.promotion` — the ``champion`` alias in the MLflow registry (import it explicitly; it needs mlflow).
"""

from embodied_r.evaluation.generate import EvalResult, compare, evaluate_model, generate_completions
from embodied_r.evaluation.metrics import aggregate, bootstrap_ci, chance_level, score_sample

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
