"""Evaluation results with provenance, per-sample outputs, and the markdown table for Dagster metadata.

lm-evaluation-harness's lesson: a number is only trustworthy with what produced it. :func:`build_results` puts the
aggregate next to the model (URI and registry version), the test set's sha256, the params hash, the git commit,
library versions, generation settings and sample counts. :func:`write_results` writes it with sorted keys and no
timestamp, so the same evaluation gives the same bytes; :func:`write_per_sample` writes one JSON line per question.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from embodied_r.hashing import sha256_file

log = logging.getLogger(__name__)

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "build_results",
    "git_commit",
    "library_versions",
    "markdown_table",
    "params_hash",
    "pooled_table",
    "sha256_file",
    "write_per_sample",
    "write_results",
]

#: Bump when the layout of the results JSON changes.
RESULTS_SCHEMA_VERSION = 1
#: Libraries whose versions change numbers.
TRACKED_LIBRARIES: tuple[str, ...] = ("torch", "transformers", "trl", "mlflow", "embodied-r")


def params_hash(params: BaseModel | Mapping[str, Any]) -> str:
    """sha256 of the params as canonical JSON (sorted keys), for a pydantic model or a plain dict."""
    data = params.model_dump(mode="json") if isinstance(params, BaseModel) else params
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def git_commit(root: str | Path = ".") -> dict[str, Any]:
    """``{"commit": sha | None, "dirty": bool | None}`` of the repository at ``root`` (``None`` outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("no git commit for %s: %s", root, exc)
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def library_versions(names: Sequence[str] = TRACKED_LIBRARIES) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` for a missing one)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def build_results(
    aggregate: Mapping[str, Any],
    *,
    model_uri: str,
    model_version: str | int | None,
    test_set_path: str | Path,
    params: BaseModel | Mapping[str, Any],
    generation: Mapping[str, Any],
    root: str | Path = ".",
    task: str = "embodied-r",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results document: aggregate numbers plus provenance (see the module docstring).

    ``generation`` is :attr:`EvalResult.settings`; ``model_version`` the MLflow registry version (``None`` for a
    model that is not registered, such as the base LM). ``extra`` is merged in under ``"extra"``.
    """
    per_category = aggregate.get("per_category", {})
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "task": task,
        "aggregate": dict(aggregate),
        "model": {"uri": model_uri, "registry_version": None if model_version is None else str(model_version)},
        "dataset": {"path": str(test_set_path), "sha256": sha256_file(test_set_path)},
        "params_sha256": params_hash(params),
        "git": git_commit(root),
        "libraries": library_versions(),
        "generation": dict(generation),
        "counts": {
            "samples": aggregate.get("n"),
            "numeric": aggregate.get("n_numeric"),
            "per_category": {cat: values["n"] for cat, values in sorted(per_category.items())},
            "per_source": {source: values["n"] for source, values in sorted(aggregate.get("per_source", {}).items())},
        },
        "extra": dict(extra or {}),
    }


def write_results(path: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` as indented JSON with sorted keys (byte-stable for the same content)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_per_sample(path: str | Path, per_sample: Sequence[Mapping[str, Any]]) -> Path:
    """Write one JSON line per sample (sorted keys), in the given order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for sample in per_sample:
            fh.write(json.dumps(sample, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _pooled_cell(agg: Mapping[str, Any]) -> str:
    lo, hi = agg["pooled_accuracy_ci95"]
    return f"**{_pct(agg['pooled_accuracy'])}** [{_pct(lo)}, {_pct(hi)}]"


def _source_cell(part: Mapping[str, Any] | None) -> str:
    if part is None:
        return "–"
    lo, hi = part["ci95"]
    return f"{_pct(part['accuracy'])} [{_pct(lo)}, {_pct(hi)}]"


def _delta(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{100 * (b - a):+.1f}"


def markdown_table(results: Mapping[str, Mapping[str, Any]], *, delta: tuple[str, str] | None = None) -> str:
    """Accuracy (%) per category and pooled (with its 95% CI) for each model, as a markdown table.

    With questions of several sources (benchmarks), a row per source follows the pooled one, with its own CI.

    ``results`` maps a column label (``"base"``, ``"grpo"``, …) to an aggregate; ``delta=(a, b)`` adds a column
    ``b − a``. Format compliance, consistency, answer rate and mean completion tokens follow the pooled row.
    """
    if not results:
        raise ValueError("no results to tabulate")
    names = list(results)
    aggs = list(results.values())
    if delta is not None and not set(delta) <= set(names):
        raise ValueError(f"delta {delta} names a column that is not among {names}")
    first, second = (names.index(delta[0]), names.index(delta[1])) if delta else (None, None)
    categories = sorted({cat for agg in aggs for cat in agg["per_category"]})
    header = ["category", "n", "chance", *names] + ([f"Δ {delta[1]} − {delta[0]}"] if delta else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]

    def row(label: str, n: Any, chance: float | None, values: list[Any], cells: list[str] | None = None) -> None:
        shown = cells if cells is not None else [_pct(v) for v in values]
        diff = [_delta(values[first], values[second])] if delta else []
        lines.append("| " + " | ".join([label, str(n), _pct(chance), *shown, *diff]) + " |")

    for cat in categories:
        ref = next(a["per_category"][cat] for a in aggs if cat in a["per_category"])
        row(cat, ref["n"], ref["chance"], [a["per_category"].get(cat, {}).get("accuracy") for a in aggs])
    row("**pooled (Avg)**", aggs[-1]["n"], None, [a["pooled_accuracy"] for a in aggs], [_pooled_cell(a) for a in aggs])
    # Several benchmarks (the paper's UrbanVideo-Bench + VSI-Bench): each one's accuracy under the pooled one.
    sources = sorted({source for agg in aggs for source in agg.get("per_source", {})})
    if len(sources) > 1:
        for source in sources:
            parts = [a.get("per_source", {}).get(source) for a in aggs]
            n = next(p["n"] for p in parts if p is not None)
            values = [None if p is None else p["accuracy"] for p in parts]
            row(f"pooled, {source}", n, None, values, [_source_cell(p) for p in parts])
    for key, label in (
        ("format_compliance", "format compliance"),
        ("consistency_rate", "think–answer consistency"),
        ("answer_rate", "answer extracted"),
        ("top_answer_share", "most frequent letter's share"),
        ("constant_answer_accuracy", "best constant letter (prior)"),
    ):
        if any(a.get(key) is not None for a in aggs):
            row(label, "", None, [a.get(key) for a in aggs])
    tokens = [a.get("mean_completion_tokens") for a in aggs]
    if any(t is not None for t in tokens):
        cells = ["–" if t is None else f"{t:.0f}" for t in tokens]
        diff = []
        if delta:
            a, b = tokens[first], tokens[second]  # type: ignore[index]
            diff = ["–" if a is None or b is None else f"{b - a:+.0f}"]
        lines.append("| " + " | ".join(["mean completion tokens", "", "–", *cells, *diff]) + " |")
    return "\n".join(lines)


def pooled_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per labelled aggregate: questions, pooled accuracy (%) with its 95% CI, format compliance."""
    lines = ["| model | n | pooled (Avg) [95% CI] | format compliance |", "|---|---:|---:|---:|"]
    for label, agg in results.items():
        lines.append(f"| {label} | {agg['n']} | {_pooled_cell(agg)} | {_pct(agg.get('format_compliance'))} |")
    return "\n".join(lines)
