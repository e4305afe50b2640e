"""The model card: each registered version's description in the MLflow registry.

Written at registration (``grpo_lm``) with what is known then — the data and its split, the recipe and where it
departs from the paper (every setting that differs from the schema's default, which is the paper's), the lineage
(git commit, the DVC-tracked outputs it was trained from, the Dagster run, the MLflow run) — and completed by
``evaluation_results`` with the test accuracy and its 95% intervals and the promotion decision. Markdown, with no
absolute machine paths.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from embodied_r.config import Params
from embodied_r.layout import Layout

log = logging.getLogger(__name__)

#: The sections of params.yaml that make the recipe (the rest: where files go, how runs are executed).
RECIPE_SECTIONS = ("data", "synthetic", "split", "keyframes", "perception", "lm", "training_set", "rewards",
                   "cold_start", "grpo", "sft", "evaluation")  # fmt: skip
#: DVC stages whose outputs the model was trained and evaluated from.
LINEAGE_STAGES = ("raw_videos", "keyframes", "vlm_descriptions", "base_lm", "training_set", "warm_lm", "grpo_lm")


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else _portable(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _portable(text: str) -> str:
    """An absolute path (a local model folder) as ``<local folder NAME>``: no machine paths in the registry."""
    return f"<local folder {Path(text).name}>" if Path(text).is_absolute() else text


def deviations(params: Params) -> list[tuple[str, Any, Any]]:
    """``(key, value, paper's value)`` of every recipe setting that differs from the schema's default (the paper's).

    >>> deviations(Params())
    []
    """
    paper = _flat(Params().model_dump(mode="json"))
    ours = _flat(params.model_dump(mode="json"))
    keys = [k for k in ours if k.split(".")[0] in RECIPE_SECTIONS and (k not in paper or ours[k] != paper[k])]
    return [(k, ours[k], paper.get(k)) for k in sorted(keys)]


def dvc_revisions(root: Path) -> dict[str, str]:
    """``stage: md5`` of the outputs of :data:`LINEAGE_STAGES` recorded in ``dvc.lock`` (empty without one)."""
    path = Path(root) / "dvc.lock"
    if not path.is_file():
        return {}
    stages = (yaml.safe_load(path.read_text("utf-8")) or {}).get("stages", {})
    out = {}
    for stage in LINEAGE_STAGES:
        outs = stages.get(stage, {}).get("outs") or []
        if outs:
            out[stage] = ", ".join(f"{o['path']} {o.get('md5', '?')[:12]}" for o in outs)
    return out


def _summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def model_card(
    params: Params,
    layout: Layout,
    *,
    registered_model: str,
    version: str,
    run_id: str,
    run_tags: Mapping[str, str] | None = None,
    results: Mapping[str, Any] | None = None,
) -> str:
    """The markdown description of version ``version``: data, recipe and deviations, lineage, and — once
    ``evaluation_results`` wrote ``results`` (its ``results.json``) — test accuracy and the promotion decision."""
    from embodied_r.evaluation.report import git_commit

    tags = dict(run_tags or {})
    raw = _summary(layout.raw / "summary.json")
    rows = _summary(layout.training_set / "summary.json")
    summary = (
        "Embodied-R's reasoning LM (GRPO) as the whole chain: video + question + options in, answer, `<think>` "
        "and provenance out (`embodied-r ask`, `mlflow models serve`)."
    )
    lines = [f"# {registered_model} v{version}", "", summary, "", "## Data and split", ""]
    lines.append(
        f"- source: {raw.get('source', params.data.label)}; {raw.get('videos', '?')} videos, "
        f"{raw.get('questions', '?')} questions; per split {raw.get('per_split', '?')} "
        f"(scenes {raw.get('scenes_per_split', '?')}; split by scene, seed {params.split.seed})"
    )
    if rows:
        lines.append(f"- training rows by split {rows.get('rows_by_split')}; left out {rows.get('excluded_by_reason')}")
    grpo = params.grpo
    lines += [
        "",
        "## Recipe",
        "",
        f"- base LM {_portable(params.lm.base)}; cold start {'on' if params.cold_start.enabled else 'off'}; GRPO "
        f"{grpo.max_steps} steps, {grpo.num_generations} generations, lr {grpo.learning_rate}",
        f"- perception: {params.perception.backend} ({params.perception.model}), {params.perception.mode}",
        f"- profile `{params.profile}`",
        "",
        "Deviations from the paper (params that differ from its values):",
        "",
    ]
    changed = deviations(params)
    lines += [f"- `{k}`: {_short(v)} (paper: {_short(p)})" for k, v, p in changed] or ["- none"]
    commit = tags.get("git.commit") or git_commit(layout.root)["commit"] or "unknown"
    dagster = tags.get("dagster.run_id", "none (not materialized by Dagster)")
    lines += ["", "## Lineage", "", f"- git commit {commit}", f"- MLflow run {run_id}", f"- Dagster run {dagster}"]
    revisions = dvc_revisions(layout.root)
    lines += [f"- DVC {stage}: {rev}" for stage, rev in revisions.items()] or ["- DVC: no dvc.lock yet"]
    lines += ["", "## Test accuracy", ""]
    if not results:
        lines.append("Not evaluated yet: `evaluation_results` adds the test accuracy and the promotion decision here.")
    else:
        lines += _evaluation_lines(results)
    return "\n".join(lines) + "\n"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def _ci(ci: Any) -> str:
    return f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""


def _evaluation_lines(results: Mapping[str, Any]) -> list[str]:
    agg = results.get("aggregate", {})
    lines = [
        f"- pooled accuracy {_pct(agg.get('pooled_accuracy'))}{_ci(agg.get('pooled_accuracy_ci95'))} (95% "
        f"bootstrap) on {agg.get('n', '?')} test questions (test set sha256 "
        f"{str(results.get('dataset', {}).get('sha256', '?'))[:12]}); format compliance "
        f"{_pct(agg.get('format_compliance'))}; best constant answer {_pct(agg.get('constant_answer_accuracy'))}",
    ]
    for source, part in sorted((agg.get("per_source") or {}).items()):
        lines.append(f"- {source}: {_pct(part.get('accuracy'))}{_ci(part.get('ci95'))}, n={part.get('n')}")
    for category, part in sorted((agg.get("per_category") or {}).items()):
        lines.append(f"- {category}: {_pct(part.get('accuracy'))} (chance {_pct(part.get('chance'))}, n={part['n']})")
    promotion = results.get("extra", {}).get("promotion") or {}
    if promotion:
        lines.append(f"- promotion: {promotion.get('reason', '')}")
    return lines


def write_model_card(
    client: Any, params: Params, layout: Layout, *, version: str, run_id: str, results: Mapping[str, Any] | None
) -> str:
    """Set version ``version``'s description to its :func:`model_card` (the run's tags give git and Dagster)."""
    name = params.tracking.registered_model
    tags = client.get_run(run_id).data.tags
    card = model_card(params, layout, registered_model=name, version=str(version), run_id=run_id, run_tags=tags,
                      results=results)  # fmt: skip
    client.update_model_version(name, str(version), description=card)
    return card


__all__ = ["deviations", "dvc_revisions", "model_card", "write_model_card"]
