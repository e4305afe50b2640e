"""The summary printed at the end of ``make demo``."""

import json

from embodied_r.layout import Layout
from embodied_r.report import render_summary


def test_summary_before_anything_ran(tmp_path):
    assert "Nothing materialized yet" in render_summary(Layout(root=tmp_path))


def test_summary_shows_the_results_table(tmp_path):
    layout = Layout(root=tmp_path)
    layout.raw.mkdir(parents=True)
    summary = {
        "source": "embedded", "questions": 3, "videos": 1, "per_split": {"test": 3}, "exclusions": {},
        "per_category": {"route_planning": 3},
    }  # fmt: skip
    (layout.raw / "summary.json").write_text(json.dumps(summary))
    layout.evaluation.mkdir(parents=True)
    row = {
        "pooled_accuracy": 0.5, "pooled_accuracy_ci95": [0.25, 0.75], "format_compliance": 1.0,
        "per_category": {"route_planning": 0.5},
    }  # fmt: skip
    (layout.evaluation / "metrics.json").write_text(
        json.dumps(
            {"base": {**row, "pooled_accuracy": 0.25}, "grpo": row, "grpo, perfect noise": row, "warm-start": row},
            sort_keys=True,  # as the asset writes it
        )
    )
    text = render_summary(layout)
    assert "POOLED (Avg)" in text and "50.0% [25.0, 75.0]" in text and "25.0%" in text
    assert "route_planning" in text
    accuracy = text.split("Test accuracy (greedy):")[1]
    header = next(line for line in accuracy.splitlines() if line.startswith("category "))
    assert header.split() == ["category", "base", "warm-start", "grpo"], "lineage order; variants are not columns"
    assert "grpo, perfect noise" in text.split("Pooled accuracy under other conditions:")[1]


def test_summary_says_whether_the_candidate_was_promoted(tmp_path):
    layout = Layout(root=tmp_path)
    layout.raw.mkdir(parents=True)
    summary = {"source": "embedded", "questions": 1, "videos": 1, "per_split": {}, "exclusions": {}, "per_category": {}}
    (layout.raw / "summary.json").write_text(json.dumps(summary))
    layout.evaluation.mkdir(parents=True)
    row = {"pooled_accuracy": 0.3, "format_compliance": 1.0, "per_category": {}}
    (layout.evaluation / "metrics.json").write_text(json.dumps({"grpo": row}))
    results = layout.evaluation / "results.json"
    reason = "no champion yet; first passing candidate (accuracy 0.3000)"
    promoted = {"promoted": True, "candidate_version": "1", "reason": reason}
    results.write_text(json.dumps({"extra": {"promotion": promoted}}))
    text = render_summary(layout)
    assert f"Promotion: v1 is the new champion ({reason})" in text
    assert "GRPO against" not in text, "no comparison recorded, none shown"
    comparison = {
        "reference": "warm-start", "paired_delta": 0.033, "paired_delta_ci95": [-0.012, 0.079], "paired_n": 95,
        "fixed": 12, "broken": 9,
    }  # fmt: skip
    results.write_text(json.dumps({"extra": {"promotion": promoted, "comparison": comparison}}))
    assert (
        "GRPO against warm-start: +3.3 points [-1.2, +7.9] (paired 95% interval over the same 95 questions; "
        "12 fixed, 9 broken)"
    ) in render_summary(layout)
    results.write_text(
        json.dumps({"extra": {"promotion": {"promoted": False, "candidate_version": "2", "reason": "not better"}}})
    )
    assert "Promotion: v2 not promoted (not better)" in render_summary(layout)


def test_summary_warns_when_the_budget_cut_a_models_answers(tmp_path):
    """An SFT model whose traces outgrow evaluation.max_new_tokens scores 0 for the budget, not for its answers:
    the summary shows the share cut and says what to change."""
    layout = Layout(root=tmp_path)
    layout.raw.mkdir(parents=True)
    summary = {"source": "embedded", "questions": 1, "videos": 1, "per_split": {}, "exclusions": {}, "per_category": {}}
    (layout.raw / "summary.json").write_text(json.dumps(summary))
    layout.evaluation.mkdir(parents=True)
    row = {"pooled_accuracy": 0.3, "format_compliance": 1.0, "per_category": {}, "truncated_rate": 0.0}
    cut = {**row, "pooled_accuracy": 0.0, "format_compliance": 0.01, "truncated_rate": 0.99}
    (layout.evaluation / "metrics.json").write_text(json.dumps({"grpo": row, "sft": cut}))
    text = render_summary(layout)
    line = next(x for x in text.splitlines() if x.startswith("cut at max_new_tokens"))
    assert line.split()[-2:] == ["0.0%", "99.0%"]
    warning = text.split("Warning:")[1]
    assert "sft: 99% of its completions hit evaluation.max_new_tokens" in warning and "grpo" not in warning
    (layout.evaluation / "metrics.json").write_text(json.dumps({"grpo": row, "sft": row}))
    assert "Warning:" not in render_summary(layout)
    noisy = {"grpo": row, "sft": row, "sft, high noise": cut, "grpo, high noise": row}
    (layout.evaluation / "metrics.json").write_text(json.dumps(noisy))
    warning = render_summary(layout).split("Warning:")[1].split("Pooled accuracy under other conditions")[0]
    assert "sft, high noise: 99% of its completions" in warning and "grpo" not in warning


def test_summary_counts_failed_videos_and_undescribed_questions(tmp_path):
    layout = Layout(root=tmp_path)
    layout.raw.mkdir(parents=True)
    summary = {"source": "vsibench", "questions": 5, "videos": 3, "per_split": {}, "exclusions": {"too_short": 2},
               "per_category": {}}  # fmt: skip
    (layout.raw / "summary.json").write_text(json.dumps(summary))
    (layout.raw / "videos.json").write_text(json.dumps({v: {} for v in ("a", "b", "c")}))
    for video in ("a", "b"):
        (layout.keyframes / video).mkdir(parents=True)
        (layout.keyframes / video / "manifest.json").write_text("{}")
    failures = layout.keyframes / "_failures"
    failures.mkdir()
    (failures / "c.json").write_text(json.dumps({"video_id": "c", "reason": "unreadable_video", "error": "bad"}))
    (failures / "old.json").write_text(json.dumps({"video_id": "old", "error": "not a video of this dataset"}))
    layout.descriptions.mkdir(parents=True)
    (layout.descriptions / "samples.jsonl").write_text('{"question_id": "1"}\n{"question_id": "2"}\n')
    (layout.descriptions / "failures.jsonl").write_text('{"question_id": "3"}\n')
    (layout.descriptions / "dropped.jsonl").write_text('{"question_id": "4"}\n{"question_id": "5"}\n')
    text = render_summary(layout)
    assert "exclusions {'too_short': 2}" in text
    assert f"Key frames: 2 of 3 videos; 1 failed {{'unreadable_video': 1}} (see {failures})" in text
    assert "Descriptions: 2 questions described; not described: 1 failed (retried on the next run" in text
    assert "2 left out because their video's key frames failed" in text

    (layout.descriptions / "failures.jsonl").write_text("")
    (layout.descriptions / "dropped.jsonl").unlink()
    assert "Descriptions: 2 questions described\n" in render_summary(layout) + "\n"
