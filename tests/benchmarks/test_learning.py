"""The learning benchmark's run summary (``benchmarks/learning.py``): the per-quarter means of the GRPO log."""

from __future__ import annotations

from benchmarks.learning import LogHistory, by_quarter


def test_by_quarter_averages_each_quarter_and_skips_missing_values() -> None:
    entries = [{"reward": 1.0, "acc": float(step), "entropy": None if step < 6 else 0.5} for step in range(8)]
    summary = by_quarter(entries, ("acc", "entropy"))
    assert summary["acc"] == [0.5, 2.5, 4.5, 6.5]
    assert summary["entropy"] == [None, None, None, 0.5]


def test_by_quarter_of_a_short_run_leaves_empty_quarters_none() -> None:
    assert by_quarter([{"acc": 1.0}, {"acc": 0.0}], ("acc",)) == {"acc": [None, 1.0, None, 0.0]}


def test_log_history_keeps_only_training_logs() -> None:
    history = LogHistory()
    history.on_log(None, None, None, logs={"reward": 0.5, "rewards/accuracy/mean": 0.25})
    history.on_log(None, None, None, logs={"train_runtime": 12.0})  # the end-of-run summary
    history.on_log(None, None, None, logs=None)
    assert history.entries == [{"reward": 0.5, "rewards/accuracy/mean": 0.25}]
