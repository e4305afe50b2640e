"""The short text report printed at the end of ``make demo``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from embodied_r.evaluation.metrics import truncation_warning
from embodied_r.layout import Layout

#: Model labels of the evaluation, in lineage order (others follow, alphabetically).
MODEL_ORDER = ("base", "warm-start", "grpo", "sft")


def _lineage_order(label: str) -> tuple[int, str]:
    model = label.split(", ", 1)[0]
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), label)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(lines)


def _pct(value: float | None, aggregate: dict | None = None) -> str:
    if value is None:
        return "-"
    ci = (aggregate or {}).get("pooled_accuracy_ci95")
    return f"{100 * value:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _perception_lines(layout: Layout) -> list[str]:
    """Key frames and descriptions: how many videos failed key frames, how many questions were not described."""
    # The stages' own file names and failure records (imported here: the rest of the summary needs neither).
    from embodied_r.keyframes import FAILURES_DIR, read_failures
    from embodied_r.perception.stage import DROPPED, FAILURES, SAMPLES

    lines = []
    videos = _load(layout.raw / "videos.json") or {}
    if layout.keyframes.is_dir():
        failed = {v: f for v, f in read_failures(layout.keyframes).items() if v in videos}  # not another dataset's
        done = sum(1 for v in videos if (layout.keyframes / v / "manifest.json").is_file() and v not in failed)
        reasons = dict(sorted(Counter(f.get("reason", "unreadable_video") for f in failed.values()).items()))
        line = f"Key frames: {done} of {len(videos)} videos"
        if failed:
            line += f"; {len(failed)} failed {reasons} (see {layout.keyframes / FAILURES_DIR})"
        lines.append(line)
    samples = _count_lines(layout.descriptions / SAMPLES)
    if samples is not None:
        failures = _count_lines(layout.descriptions / FAILURES) or 0
        dropped = _count_lines(layout.descriptions / DROPPED) or 0
        line = f"Descriptions: {samples} questions described"
        if failures or dropped:
            line += (
                f"; not described: {failures} failed (retried on the next run, see "
                f"{layout.descriptions / FAILURES}), {dropped} left out because their video's key frames "
                f"failed (see {layout.descriptions / DROPPED})"
            )
        lines.append(line)
    return lines


def render_summary(layout: Layout) -> str:
    """What exists so far, stage by stage, with where to look next."""
    parts = []
    summary = _load(layout.raw / "summary.json")
    if summary is None:
        return "Nothing materialized yet: run `make demo` (or `dvc repro`)."
    parts.append(
        f"Dataset ({summary['source']}): {summary['questions']} questions over {summary['videos']} videos; "
        f"split {summary['per_split']}; exclusions {summary['exclusions'] or 'none'}"
    )
    parts.append(_table(sorted(summary["per_category"].items()), ("category", "questions")))
    perception = _perception_lines(layout)
    if perception:
        parts.append("\n".join(perception))
    metrics = _load(layout.evaluation / "metrics.json")
    if metrics:
        # Columns: the models themselves; rows labelled "<model>, <variant>" (noise levels, held-out categories)
        # are listed below the table by their pooled accuracy.
        # metrics.json has sorted keys; show the models in lineage order (base -> warm start -> GRPO, then SFT)
        labels = sorted((label for label in metrics if ", " not in label), key=_lineage_order)
        variants = sorted((label for label in metrics if ", " in label), key=_lineage_order)
        categories = sorted({c for label in labels for c in metrics[label].get("per_category", {})})
        rows = [(c, *(_pct(metrics[label]["per_category"].get(c)) for label in labels)) for c in categories]
        rows.append(("POOLED (Avg)", *(_pct(metrics[label]["pooled_accuracy"], metrics[label]) for label in labels)))
        rows.append(("format compliance", *(_pct(metrics[label]["format_compliance"]) for label in labels)))
        if any(metrics[label].get("truncated_rate") is not None for label in labels):
            rows.append(("cut at max_new_tokens", *(_pct(metrics[label].get("truncated_rate")) for label in labels)))
        parts.append("Test accuracy (greedy):\n" + _table(rows, ("category", *labels)))
        checked = labels + [v for v in variants if v.endswith(" noise")]  # the noise-study reruns decode too
        warnings = [w for label in checked if (w := truncation_warning(label, metrics[label])) is not None]
        if warnings:
            parts.append("Warning:\n" + "\n".join(f"  {w}" for w in warnings))
        if variants:
            width = max(len(v) for v in variants)
            lines = [f"  {v:<{width}}  {_pct(metrics[v]['pooled_accuracy'], metrics[v])}" for v in variants]
            parts.append("Pooled accuracy under other conditions:\n" + "\n".join(lines))
        extra = (_load(layout.evaluation / "results.json") or {}).get("extra") or {}
        comparison = extra.get("comparison") or {}
        if comparison.get("paired_delta") is not None:
            lo, hi = comparison["paired_delta_ci95"]
            parts.append(
                f"GRPO against {comparison['reference']}: {100 * comparison['paired_delta']:+.1f} points "
                f"[{100 * lo:+.1f}, {100 * hi:+.1f}] (paired 95% interval over the same {comparison['paired_n']} "
                f"questions; {comparison['fixed']} fixed, {comparison['broken']} broken)"
            )
        promotion = extra.get("promotion") or {}
        if promotion:
            version = promotion.get("candidate_version")
            verdict = f"v{version} is the new champion" if promotion.get("promoted") else f"v{version} not promoted"
            parts.append(f"Promotion: {verdict} ({promotion.get('reason')}); `embodied-r registry status`")
        plots = ("category_accuracy.png", "training_curves.png", "noise_study.png")
        parts.append(
            "Plots: " + ", ".join(str(layout.evaluation / p) for p in plots if (layout.evaluation / p).exists())
        )
    parts.append(
        f"Outputs under {layout.data}. Lineage: `make ui` (Dagster, http://127.0.0.1:3000); "
        "runs: `make mlflow-ui` (http://127.0.0.1:5000)."
    )
    return "\n\n".join(parts)
