"""Evaluation and training figures as PNG files (matplotlib's Agg canvas, no pyplot global state).

Byte-deterministic: a fixed DPI and size, and no ``Software`` metadata in the PNG, so the same numbers give the
same file (DVC and Dagster see no spurious change).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = ["DPI", "category_accuracy_png", "noise_study_png", "training_curves_png"]

#: Resolution of every figure (fixed, for deterministic bytes).
DPI = 100
#: Per-reward means as TRL logs them.
REWARD_METRIC_RE = re.compile(r"^rewards/(?P<name>.+)/mean$")
LENGTH_METRIC = "completions/mean_length"
_PNG_METADATA: dict[str, Any] = {"Software": None}


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png", metadata=_PNG_METADATA)
    return path


def _pooled_chance(aggregate: Mapping[str, Any]) -> float | None:
    cats = [c for c in aggregate["per_category"].values() if c.get("chance") is not None]
    total = sum(c["n"] for c in cats)
    return sum(c["chance"] * c["n"] for c in cats) / total if total else None


def category_accuracy_png(
    results: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    *,
    title: str = "Accuracy per category (greedy)",
) -> Path:
    """Grouped bars of per-category and pooled accuracy, one bar per model, chance level as a dashed line.

    ``results`` maps a label (``"base"``, ``"trained"``) to an aggregate dict
    (:func:`embodied_r.evaluation.metrics.aggregate`); the order of the mapping is the order of the bars. The
    pooled group carries its 95% bootstrap interval as an error bar.
    """
    if not results:
        raise ValueError("no results to plot")
    aggregates = list(results.values())
    categories = sorted({cat for agg in aggregates for cat in agg["per_category"]})
    groups = [*categories, "pooled (Avg)"]
    width = 0.8 / len(results)
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) + 2), 4.5))
    ax = fig.add_subplot()
    for k, (label, agg) in enumerate(results.items()):
        values = [agg["per_category"].get(cat, {}).get("accuracy", float("nan")) for cat in categories]
        values.append(agg["pooled_accuracy"])
        xs = [g - 0.4 + width * (k + 0.5) for g in range(len(groups))]
        ax.bar(xs, values, width=width, label=label)
        lo, hi = agg["pooled_accuracy_ci95"]
        pooled = agg["pooled_accuracy"]
        ax.errorbar([xs[-1]], [pooled], yerr=[[pooled - lo], [hi - pooled]], color="black", capsize=3, lw=1)
    reference = aggregates[0]
    chances = [reference["per_category"].get(cat, {}).get("chance") for cat in categories]
    chances.append(_pooled_chance(reference))
    for g, chance in enumerate(chances):
        if chance is not None:
            ax.hlines(chance, g - 0.45, g + 0.45, colors="black", linestyles="dashed", lw=1,
                      label="chance" if g == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def _history(client: Any, run_id: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return [m.step for m in points], [m.value for m in points]


def training_curves_png(
    client: Any, run_id: str, path: str | Path, supervised_runs: Mapping[str, str] | None = None
) -> Path:
    """Reward curves (``rewards/<name>/mean``, and ``reward`` if logged) and mean completion length per GRPO step;
    with ``supervised_runs`` (label → run id) a third panel with their training loss (``<stage>/loss``).

    ``client`` is an ``mlflow.MlflowClient``; the metrics are read from the runs' history. A run without these
    metrics gives a figure that says so (logged at WARNING), not an error.
    """
    metrics = client.get_run(run_id).data.metrics
    reward_keys = sorted(k for k in metrics if REWARD_METRIC_RE.match(k))
    if "reward" in metrics:
        reward_keys.append("reward")
    panels = 3 if supervised_runs else 2
    fig = Figure(figsize=(5.0 * panels, 4.0))
    axes = fig.subplots(1, panels)
    ax_reward, ax_length = axes[0], axes[1]
    for key in reward_keys:
        steps, values = _history(client, run_id, key)
        match = REWARD_METRIC_RE.match(key)
        ax_reward.plot(steps, values, marker=".", label=match.group("name") if match else "total (weighted)")
    if reward_keys:
        ax_reward.legend(fontsize=8)
    else:
        ax_reward.text(0.5, 0.5, "no reward metrics logged", ha="center", va="center", transform=ax_reward.transAxes)
    ax_reward.set_title("GRPO rewards (mean per step)")
    ax_reward.set_xlabel("step")
    if LENGTH_METRIC in metrics:
        steps, values = _history(client, run_id, LENGTH_METRIC)
        ax_length.plot(steps, values, marker=".", color="tab:purple")
    else:
        ax_length.text(0.5, 0.5, "no length metric logged", ha="center", va="center", transform=ax_length.transAxes)
    ax_length.set_title("GRPO completion length (mean tokens)")
    ax_length.set_xlabel("step")
    if not reward_keys and LENGTH_METRIC not in metrics:
        log.warning("run %s has no reward or completion-length metrics to plot", run_id)
    if supervised_runs:
        ax_loss = axes[2]
        for label, supervised_run in supervised_runs.items():
            keys = [k for k in client.get_run(supervised_run).data.metrics if k.endswith("/loss")]
            for key in keys:
                steps, values = _history(client, supervised_run, key)
                ax_loss.plot(steps, values, marker=".", label=label)
        if ax_loss.lines:
            ax_loss.legend(fontsize=8)
            ax_loss.set_yscale("log")
        ax_loss.set_title("supervised training loss")
        ax_loss.set_xlabel("step")
    fig.tight_layout()
    return _save(fig, path)


def noise_study_png(
    default: Mapping[str, Mapping[str, Any]],
    noisy: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    *,
    title: str = "Pooled accuracy vs perception noise",
) -> Path:
    """Pooled accuracy (with 95% CI) of each model at the default noise and at each studied level.

    ``default`` maps a model label to its aggregate at the default noise; ``noisy`` maps ``"<model>, <level>
    noise"`` to an aggregate. One group of bars per noise level, one bar per model.
    """
    levels = ["default"]
    for label in noisy:
        level = label.split(", ", 1)[1].removesuffix(" noise")
        if level not in levels:
            levels.append(level)
    fig = Figure(figsize=(max(5.0, 1.6 * len(levels) + 2), 4.0))
    ax = fig.add_subplot()
    width = 0.8 / max(len(default), 1)
    for k, (model, agg) in enumerate(default.items()):
        values, errors = [], [[], []]
        for level in levels:
            point = agg if level == "default" else noisy.get(f"{model}, {level} noise")
            value = point["pooled_accuracy"] if point else float("nan")
            lo, hi = point["pooled_accuracy_ci95"] if point else (value, value)
            values.append(value)
            errors[0].append(value - lo)
            errors[1].append(hi - value)
        xs = [g - 0.4 + width * (k + 0.5) for g in range(len(levels))]
        ax.bar(xs, values, width=width, label=model, yerr=errors, capsize=3)
    ax.set_xticks(range(len(levels)), levels)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("pooled accuracy")
    ax.set_xlabel("perception noise")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
