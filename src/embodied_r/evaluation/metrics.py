"""Scoring of evaluation completions: pure functions, no model and no I/O (reference §6).

One completion is scored by :func:`score_sample` with the project's answer extraction
(:func:`embodied_r.answers.extract_answer`, the same function the accuracy reward uses) and the strict format
reward (:func:`embodied_r.rewards.make_format_reward`), so "correct" and "well formatted" mean the same thing in
training and in the report. :func:`aggregate` turns the per-sample records into the headline numbers:

``pooled_accuracy``
    The paper's "Avg": the mean score over **all** test questions (each question weighs the same), with a
    seeded 95% percentile bootstrap interval (:func:`bootstrap_ci`).
``category_mean_accuracy``
    The mean of the per-category accuracies (each category weighs the same). It differs from the pooled
    number whenever categories are unbalanced; both are reported, the pooled one is the headline.
``per_category``
    Accuracy, sample count and chance level (mean of ``1 / number of choices``) per category.
``per_source``
    Per benchmark (the rows' ``data_source``: ``urbanvideo``, ``vsibench``, ``embedded``): sample count, accuracy
    and its own 95% bootstrap interval. The paper trains and tests on both benchmarks together; the pooled number
    alone would hide one of them carrying the other.
``mra``
    Mean relative accuracy of numeric rows (no choices), only when there are any. A numeric row's score is its
    MRA, so it enters the pooled accuracy with partial credit (VSI-Bench's convention).
``format_compliance`` / ``answer_rate`` / ``mean_completion_tokens``
    Share of strictly formatted completions, share with an extractable answer, mean generated tokens.
``answer_shares`` / ``top_answer_share`` / ``constant_answer_accuracy``
    Over the multiple-choice rows (:func:`answer_distribution`): how often the model gave each letter, the largest
    of those shares (1.0: the same letter to every question), and the accuracy of the best *constant* answer — the
    letter prior of the test set. A model that answers one letter everywhere scores exactly that, whatever it
    learnt; a gain over a baseline means little unless the accuracy also clears this figure.

Two models on the same questions are compared by :func:`paired_difference`: the mean per-question gain and its
paired bootstrap interval, tighter than the overlap of the two models' own intervals (the same questions are
resampled for both, so what is hard for one is hard for the other).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embodied_r.answers import AnswerMode, extract_answer, extract_number, extract_think, mean_relative_accuracy
from embodied_r.rewards import make_format_reward
from embodied_r.training.rows import TrainingRow

__all__ = [
    "aggregate",
    "answer_distribution",
    "bootstrap_ci",
    "chance_level",
    "paired_difference",
    "per_category_accuracy",
    "per_source_accuracy",
    "pooled_accuracy",
    "score_sample",
    "truncation_warning",
]

#: The paper's strict format reward; ``format_ok`` means it pays 1.
_STRICT_FORMAT = make_format_reward(0.0)


def chance_level(choices: Sequence[str]) -> float | None:
    """Accuracy of a uniform random guess: ``1 / len(choices)``; ``None`` for a numeric question (no choices).

    >>> chance_level(["A", "B", "C", "D"])
    0.25
    """
    return 1.0 / len(choices) if choices else None


def score_sample(
    completion: str,
    row: TrainingRow,
    *,
    think_prefill: str | None = None,
    answer_mode: AnswerMode = "answer_tag",
    completion_tokens: int | None = None,
) -> dict[str, Any]:
    """Score one completion against its row.

    Args:
        completion: The generated text (the model's new tokens, decoded).
        row: The question (its ``solution``, ``choices`` and ``category``).
        think_prefill: Text the chat template already put at the start of the assistant turn (``"<think>"`` for
            a model trained with ``think_prefill``); it is prepended before scoring, as in training.
        answer_mode: How the letter is read (see :mod:`embodied_r.answers`).
        completion_tokens: Generated token count, copied into the record when given.

    Returns a JSON-ready dict: ``question_id``, ``category``, ``solution``, ``choices``, ``completion`` (as
    generated), ``numeric``, ``letter`` (``None`` when unreadable or numeric), ``prediction`` (the number read
    for numeric rows), ``answered``, ``correct``, ``score`` (1/0, or the MRA for numeric rows), ``mra``
    (numeric rows only, else ``None``), ``format_ok``, ``think`` and ``completion_tokens``.
    A numeric row counts as ``correct`` only with MRA 1 (within 5% of the truth).
    """
    text = (think_prefill or "") + completion
    numeric = not row.choices
    letter: str | None = None
    prediction: float | None = None
    mra: float | None = None
    if numeric:
        prediction = extract_number(text)
        mra = mean_relative_accuracy(prediction, float(row.solution))
        score = mra
        answered = prediction is not None
    else:
        letter = extract_answer(text, row.choices, answer_mode, question=row.question)
        score = float(letter is not None and letter == row.solution.strip().upper())
        answered = letter is not None
    return {
        "question_id": row.question_id,
        "category": row.category,
        "data_source": row.data_source,
        "solution": row.solution,
        "choices": list(row.choices),
        "completion": completion,
        "numeric": numeric,
        "letter": letter,
        "prediction": prediction,
        "answered": answered,
        "correct": score == 1.0,
        "score": score,
        "mra": mra,
        "format_ok": _STRICT_FORMAT.score(text) == 1.0,
        "think": extract_think(text),
        "completion_tokens": completion_tokens,
    }


def pooled_accuracy(samples: Sequence[Mapping[str, Any]]) -> float:
    """Mean ``score`` over all samples (the paper's "Avg"); NaN for no samples."""
    return statistics.fmean(float(s["score"]) for s in samples) if samples else math.nan


def per_category_accuracy(samples: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per category (sorted): ``n``, ``accuracy`` (mean score) and ``chance`` (mean 1/#choices, ``None`` if numeric).

    >>> per_category_accuracy([{"category": "a", "score": 1.0, "choices": ["A", "B"]}])
    {'a': {'accuracy': 1.0, 'chance': 0.5, 'n': 1}}
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for sample in samples:
        groups.setdefault(sample["category"], []).append(sample)
    out: dict[str, dict[str, Any]] = {}
    for category in sorted(groups):
        group = groups[category]
        chances = [chance_level(s["choices"]) for s in group]
        known = [c for c in chances if c is not None]
        out[category] = {
            "accuracy": pooled_accuracy(group),
            "chance": statistics.fmean(known) if known else None,
            "n": len(group),
        }
    return out


def per_source_accuracy(
    samples: Sequence[Mapping[str, Any]], *, bootstrap_samples: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per data source (sorted): ``n``, ``accuracy`` (mean score) and ``ci95`` (:func:`bootstrap_ci`, seeded).

    >>> per_source_accuracy([{"data_source": "vsibench", "score": 1.0}, {"data_source": "urbanvideo", "score": 0.0}])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'urbanvideo': {'accuracy': 0.0, 'ci95': [0.0, 0.0], 'n': 1},
     'vsibench': {'accuracy': 1.0, 'ci95': [1.0, 1.0], 'n': 1}}
    """
    groups: dict[str, list[float]] = {}
    for sample in samples:
        groups.setdefault(str(sample["data_source"]), []).append(float(sample["score"]))
    return {
        source: {
            "accuracy": statistics.fmean(scores),
            "ci95": list(bootstrap_ci(scores, n=bootstrap_samples, seed=seed)),
            "n": len(scores),
        }
        for source, scores in sorted(groups.items())
    }


def bootstrap_ci(
    correct: Sequence[bool | float], n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``correct`` (bools or per-sample scores), seeded.

    ``n`` resamples of the whole sample with replacement; the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of their means. The same inputs and seed give the same interval. An empty
    input gives ``(nan, nan)``.

    >>> bootstrap_ci([True] * 10)
    (1.0, 1.0)
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(correct, dtype=float)
    if values.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def paired_difference(
    before: Sequence[bool | float], after: Sequence[bool | float], *, n: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``after`` minus ``before``, question by question (the same questions, in the same order): ``delta``, the
    mean difference; ``ci95``, its percentile bootstrap interval (:func:`bootstrap_ci` of the differences: each
    resample draws questions, with both models' scores on them); ``n``, the number of questions.

    >>> paired_difference([0, 0, 1, 1], [1, 1, 1, 1], n=200)["delta"]
    0.5
    """
    if len(before) != len(after):
        raise ValueError(f"paired scores differ in length: {len(before)} before, {len(after)} after")
    diffs = [float(a) - float(b) for b, a in zip(before, after, strict=True)]
    delta = sum(diffs) / len(diffs) if diffs else math.nan
    return {"delta": delta, "ci95": list(bootstrap_ci(diffs, n=n, seed=seed)), "n": len(diffs)}


def answer_distribution(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The letters given over the multiple-choice samples, and what answering one letter everywhere would score.

    Returns ``answer_shares`` (share of each letter given, sorted; unreadable answers under ``"none"``),
    ``top_answer_share`` (the largest letter share) and ``constant_answer_accuracy`` (the best accuracy of a
    constant letter: the largest share of one letter among the solutions). All ``None`` without such samples.

    >>> d = answer_distribution([{"numeric": False, "letter": "B", "solution": s} for s in "ABBC"])
    >>> d["answer_shares"], d["top_answer_share"], d["constant_answer_accuracy"]
    ({'B': 1.0}, 1.0, 0.5)
    """
    choice = [s for s in samples if not s["numeric"]]
    if not choice:
        return {"answer_shares": None, "top_answer_share": None, "constant_answer_accuracy": None}
    given = Counter(s["letter"] or "none" for s in choice)
    solutions = Counter(str(s["solution"]).strip().upper() for s in choice)
    letters = {k: v for k, v in given.items() if k != "none"}
    return {
        "answer_shares": {k: given[k] / len(choice) for k in sorted(given)},
        "top_answer_share": max(letters.values()) / len(choice) if letters else 0.0,
        "constant_answer_accuracy": max(solutions.values()) / len(choice),
    }


#: Share of a model's completions cut at ``max_new_tokens`` above which its accuracy says more about the budget
#: than about the model (a cut completion has no ``<answer>`` and scores 0). The base instruct model, which
#: ignores the format anyway, runs past 32 tokens on ≈ 30% of cpu-long's questions: below this, no warning.
TRUNCATION_WARN_RATE = 0.5


def truncation_warning(label: str, agg: Mapping[str, Any], max_new_tokens: int | None = None) -> str | None:
    """A message when ``label``'s completions were mostly cut by the generation budget, else None.

    >>> print(truncation_warning("sft", {"truncated_rate": 0.99}, 32))  # doctest: +ELLIPSIS
    sft: 99% of its completions hit evaluation.max_new_tokens (32) before ending; ...
    >>> truncation_warning("grpo", {"truncated_rate": 0.0}) is None
    True
    """
    rate = agg.get("truncated_rate")
    if rate is None or rate <= TRUNCATION_WARN_RATE:
        return None
    budget = f" ({max_new_tokens})" if max_new_tokens is not None else ""
    return (
        f"{label}: {100 * rate:.0f}% of its completions hit evaluation.max_new_tokens{budget} before ending; "
        "they have no <answer> and score 0, so its accuracy measures the budget: raise evaluation.max_new_tokens "
        "above the length of what this model writes (the SFT baseline's traces, for one) and evaluate again"
    )


def _mean_or_none(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def aggregate(samples: Sequence[Mapping[str, Any]], *, bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The headline numbers of a list of :func:`score_sample` records (see the module docstring).

    Consistency fields (``consistency_*``) are added by the caller when a judge ran
    (:func:`embodied_r.evaluation.generate.consistency_summary`).
    """
    scores = [float(s["score"]) for s in samples]
    per_category = per_category_accuracy(samples)
    numeric = [s for s in samples if s["numeric"]]
    tokens = [s["completion_tokens"] for s in samples if s.get("completion_tokens") is not None]
    lo, hi = bootstrap_ci(scores, n=bootstrap_samples, seed=seed)
    return {
        "n": len(samples),
        "n_numeric": len(numeric),
        "pooled_accuracy": pooled_accuracy(samples),
        "pooled_accuracy_ci95": [lo, hi],
        "bootstrap": {"resamples": bootstrap_samples, "seed": seed, "level": 0.95, "method": "percentile"},
        "category_mean_accuracy": _mean_or_none([c["accuracy"] for c in per_category.values()]),
        "per_category": per_category,
        "per_source": per_source_accuracy(samples, bootstrap_samples=bootstrap_samples, seed=seed),
        "mra": _mean_or_none([float(s["mra"]) for s in numeric]),
        "format_compliance": _mean_or_none([float(s["format_ok"]) for s in samples]),
        "answer_rate": _mean_or_none([float(s["answered"]) for s in samples]),
        "mean_completion_tokens": _mean_or_none([float(t) for t in tokens]),
        **answer_distribution(samples),
    }
