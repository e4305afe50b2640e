"""The short text report printed at the end of ``make demo``."""

from __future__ import annotations

import json
from pathlib import Path

from embodied_r.layout import Layout


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(lines)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


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
    parts.append(
        f"Outputs under {layout.data}. Lineage: `make ui` (Dagster, http://127.0.0.1:3000); "
        "runs: `make mlflow-ui` (http://127.0.0.1:5000)."
    )
    return "\n\n".join(parts)
