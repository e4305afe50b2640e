"""Generation on a tiny offline Llama, evaluate_model's scoring path, the consistency judge, compare()."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embodied_r.evaluation import generate as gen
from embodied_r.evaluation.generate import (
    EvalResult,
    Generation,
    compare,
    consistency_summary,
    evaluate_model,
    generate_completions,
    judge_consistency,
    read_think_prefill,
)
from embodied_r.evaluation.metrics import score_sample
from tests.evaluation.helpers import ScriptedJudge, make_row


@pytest.mark.slow
def test_generate_completions_on_tiny_model(tiny_lm: Path, rows: list) -> None:
    gens = generate_completions(tiny_lm, rows, max_new_tokens=6, batch_size=2, progress=False)
    assert len(gens) == len(rows)
    assert all(isinstance(g, Generation) and 1 <= g.completion_tokens <= 6 for g in gens)
    assert all(g.truncated == (g.completion_tokens == 6) or g.completion_tokens < 6 for g in gens)
    again = generate_completions(tiny_lm, rows, max_new_tokens=6, batch_size=2, progress=False)
    assert [g.text for g in again] == [g.text for g in gens]  # greedy: deterministic


@pytest.mark.slow
def test_batching_does_not_change_greedy_output_or_order(tiny_lm: Path, rows: list) -> None:
    one = generate_completions(tiny_lm, rows, max_new_tokens=4, batch_size=1, progress=False)
    batched = generate_completions(tiny_lm, rows, max_new_tokens=4, batch_size=3, progress=False)
    assert batched == one  # left padding + attention mask: same tokens as one by one, in row order
    reversed_ = generate_completions(tiny_lm, rows[::-1], max_new_tokens=4, batch_size=3, progress=False)
    assert reversed_ == one[::-1]


@pytest.mark.slow
def test_evaluate_model_on_tiny_model(tiny_lm: Path, rows: list) -> None:
    result = evaluate_model(tiny_lm, rows, max_new_tokens=6, batch_size=3, judge=ScriptedJudge([]), progress=False)
    assert isinstance(result, EvalResult)
    assert len(result.per_sample) == len(rows)
    assert [s["question_id"] for s in result.per_sample] == [r.question_id for r in rows]
    agg = result.aggregate
    assert agg["n"] == len(rows) and 0.0 <= agg["pooled_accuracy"] <= 1.0
    assert agg["per_category"]["object_rel_distance"]["chance"] == 0.25
    assert "consistency_rate" in agg and agg["consistency_judge_failures"] == 0
    assert result.settings["do_sample"] is False and result.settings["think_prefill"] is None


def test_read_think_prefill(tmp_path: Path) -> None:
    assert read_think_prefill(tmp_path) is None
    (tmp_path / "grpo_training.json").write_text(json.dumps({"think_prefill": "<think>"}))
    assert read_think_prefill(tmp_path) == "<think>"
    (tmp_path / "grpo_training.json").write_text(json.dumps({"think_prefill": None}))
    assert read_think_prefill(tmp_path) is None


def _canned(texts: list[str]):
    def fake(model_dir, rows, **kwargs):
        return [Generation(text=t, completion_tokens=len(t.split()), truncated=False) for t in texts]

    return fake


def test_evaluate_model_applies_recorded_think_prefill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "grpo_training.json").write_text(json.dumps({"think_prefill": "<think>"}))
    monkeypatch.setattr(gen, "generate_completions", _canned(["door right</think><answer>B</answer>"]))
    result = evaluate_model(tmp_path, [make_row("q")], max_new_tokens=8, batch_size=1, progress=False)
    assert result.settings["think_prefill"] == "<think>"
    assert result.aggregate["format_compliance"] == 1.0 and result.aggregate["pooled_accuracy"] == 1.0
    explicit_off = evaluate_model(tmp_path, [make_row("q")], max_new_tokens=8, batch_size=1, think_prefill=None)
    assert explicit_off.aggregate["format_compliance"] == 0.0


def test_evaluate_model_rejects_no_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no rows"):
        evaluate_model(tmp_path, [], max_new_tokens=4, batch_size=1)


def test_consistency_with_scripted_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [make_row(f"q{i}") for i in range(6)] + [make_row("n", "3", choices=())]
    texts = [
        "<think>right side</think><answer>B</answer>",  # judged B: consistent
        "<think>left side</think><answer>B</answer>",  # judged A: inconsistent
        "<think>left</think><answer>A</answer>",  # judge request fails
        "<think>hmm</think><answer>C</answer>",  # unparsable judge reply
        "<answer>B</answer>",  # no think: not judged
        "<think>no idea</think>",  # no answer: not judged
        "<think>three</think><answer>3</answer>",  # numeric: not judged
    ]
    monkeypatch.setattr(gen, "generate_completions", _canned(texts))
    judge = ScriptedJudge(["B", "A", RuntimeError("server down"), "I cannot tell"])
    result = evaluate_model("unused", rows, max_new_tokens=8, batch_size=2, judge=judge, progress=False)
    agg = result.aggregate
    assert len(judge.requests) == 4
    assert "right side" in judge.requests[0][1]["content"] and rows[0].question in judge.requests[0][1]["content"]
    assert agg["consistency_rate"] == 0.5  # 1 of the 2 verdicts; failures are not zeros
    assert agg["consistency_judged"] == 2 and agg["consistency_requests"] == 4
    assert agg["consistency_judge_failures"] == 1 and agg["consistency_judge_unparsable"] == 1
    assert agg["consistency_no_think"] == 1
    statuses = [s["judge_status"] for s in result.per_sample]
    assert statuses == ["judged", "judged", "failed_or_unparsable", "failed_or_unparsable", "no_think",
                        "not_applicable", "not_applicable"]  # fmt: skip
    assert [s["consistent"] for s in result.per_sample[:3]] == [True, False, None]


def test_consistency_rate_is_none_when_judge_always_fails() -> None:
    rows = [make_row("q0")]
    samples = [score_sample("<think>right</think><answer>B</answer>", rows[0])]
    judge = ScriptedJudge([RuntimeError("boom")])
    verdicts = judge_consistency(judge, rows, samples)
    summary = consistency_summary(verdicts, judge.stats.failures, judge.stats.unparsable)
    assert summary["consistency_rate"] is None and summary["consistency_judge_failures"] == 1


def _result(correct: dict[str, bool], category: str = "c") -> EvalResult:
    from embodied_r.evaluation.metrics import aggregate

    samples = [
        score_sample("<think>t</think><answer>" + ("B" if ok else "A") + "</answer>", make_row(q, category=category))
        for q, ok in correct.items()
    ]
    return EvalResult(aggregate=aggregate(samples), per_sample=samples, settings={})


def test_compare() -> None:
    base = _result({"q1": True, "q2": False, "q3": False, "q4": True})
    trained = _result({"q1": True, "q2": True, "q3": True, "q4": False})
    diff = compare(base, trained)
    assert diff["pooled_accuracy_delta"] == pytest.approx(0.25)
    assert diff["per_category"]["c"] == {"base": 0.5, "trained": 0.75, "delta": pytest.approx(0.25)}
    assert (diff["paired_n"], diff["fixed"], diff["broken"]) == (4, 2, 1)
    assert diff["consistency_rate_delta"] is None
    # the paired interval of the gain: per-question differences 0, +1, +1, -1 resampled together
    assert diff["paired_delta"] == pytest.approx(0.25)
    lo, hi = diff["paired_delta_ci95"]
    assert -1.0 <= lo < 0.25 < hi <= 1.0


def test_compare_pairs_only_the_questions_both_models_answered() -> None:
    base = _result({"q1": False, "q2": False, "q3": True})
    trained = _result({"q2": True, "q3": True, "q4": False})
    diff = compare(base, trained)
    assert diff["paired_n"] == 2 and diff["paired_delta"] == pytest.approx(0.5)
    assert compare(_result({"a": True}), _result({"b": True}))["paired_delta"] is None, "nothing shared"


@pytest.mark.slow
def test_prefilled_template_model_is_scored_with_prefill(tiny_lm: Path, rows: list, tmp_path: Path) -> None:
    """A model saved like GRPO's ``final`` with think_prefill: template ends in <think>, record says so."""
    from transformers import AutoTokenizer

    model = shutil.copytree(tiny_lm, tmp_path / "final")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template += "{% if add_generation_prompt %}<think>{% endif %}"
    tokenizer.save_pretrained(model)
    (model / "grpo_training.json").write_text(json.dumps({"think_prefill": "<think>"}))
    rendered = tokenizer.apply_chat_template(rows[0].prompt, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|im_start|>assistant\n<think>")

    result = evaluate_model(model, rows[:2], max_new_tokens=4, batch_size=2, progress=False)
    assert result.settings["think_prefill"] == "<think>"
    for sample, row in zip(result.per_sample, rows[:2], strict=True):
        expected = score_sample(sample["completion"], row, think_prefill="<think>")
        assert sample["format_ok"] == expected["format_ok"] and sample["think"] == expected["think"]


def test_subset_reaggregates_the_chosen_categories_with_the_same_bootstrap() -> None:
    from embodied_r.evaluation.metrics import aggregate

    samples = [
        score_sample("<think>t</think><answer>" + ("B" if ok else "A") + "</answer>", make_row(q, category=c))
        | {"truncated": cut}
        for q, ok, c, cut in (("q1", True, "seen", False), ("q2", True, "seen", True), ("q3", False, "seen", False),
                              ("q4", False, "unseen", False), ("q5", False, "unseen", False))
    ]  # fmt: skip
    whole = EvalResult(
        aggregate=aggregate(samples, bootstrap_samples=300, seed=3), per_sample=samples, settings={"x": 1}
    )
    seen = whole.subset({"seen"})
    assert [s["question_id"] for s in seen.per_sample] == ["q1", "q2", "q3"]
    assert seen.aggregate["n"] == 3 and seen.aggregate["pooled_accuracy"] == pytest.approx(2 / 3)
    assert seen.aggregate["bootstrap"] == whole.aggregate["bootstrap"]  # 300 resamples, seed 3, as the whole
    assert (
        seen.aggregate["pooled_accuracy_ci95"]
        == aggregate(samples[:3], bootstrap_samples=300, seed=3)["pooled_accuracy_ci95"]
    )
    assert seen.aggregate["truncated_rate"] == pytest.approx(1 / 3) and seen.settings == {"x": 1}
    assert whole.subset({"unseen", "seen"}).aggregate["pooled_accuracy"] == pytest.approx(2 / 5)
    assert whole.subset({"elsewhere"}) is None
