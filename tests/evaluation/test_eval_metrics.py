"""Pure scoring: per-sample records, pooled vs per-category accuracy, MRA, chance, bootstrap CI."""

from __future__ import annotations

import math

import pytest

from embodied_r.answers import extract_answer
from embodied_r.evaluation.metrics import (
    aggregate,
    answer_distribution,
    bootstrap_ci,
    chance_level,
    paired_difference,
    per_category_accuracy,
    per_source_accuracy,
    pooled_accuracy,
    score_sample,
)
from tests.evaluation.helpers import make_row

GOOD = "<think>The door is on the right of the chair.</think><answer>B</answer>"


def test_score_sample_correct_and_well_formatted() -> None:
    s = score_sample(GOOD, make_row("q1"), completion_tokens=17)
    assert (s["letter"], s["correct"], s["score"], s["format_ok"]) == ("B", True, 1.0, True)
    assert s["think"] == "The door is on the right of the chair."
    assert s["completion_tokens"] == 17 and s["mra"] is None and not s["numeric"]


@pytest.mark.parametrize(
    ("completion", "letter", "correct", "format_ok"),
    [
        ("<think>left</think><answer>A</answer>", "A", False, True),
        ("<answer>B</answer>", "B", True, False),  # right answer, no reasoning block
        ("<think>right</think> so <answer>B</answer>", "B", True, False),  # text between blocks
        ("<think>right</think><answer>A or B</answer>", None, False, True),  # ambiguous
        ("<think>right</think><answer>B", None, False, False),  # truncated
        ("", None, False, False),
    ],
)
def test_score_sample_cases(completion: str, letter: str | None, correct: bool, format_ok: bool) -> None:
    s = score_sample(completion, make_row("q"))
    assert (s["letter"], s["correct"], s["format_ok"], s["answered"]) == (
        letter,
        correct,
        format_ok,
        letter is not None,
    )


@pytest.mark.parametrize(
    "completion",
    [
        GOOD,
        "<think>It is B. No.</think><answer>(C)</answer>",
        "<think>x</think><answer>The answer is D.</answer>",
        "<answer>b</answer>",
        "the answer is A",
    ],
)
@pytest.mark.parametrize("mode", ["answer_tag", "official_scan"])
def test_letter_is_the_shared_extraction(completion: str, mode: str) -> None:
    row = make_row("q")
    assert score_sample(completion, row, answer_mode=mode)["letter"] == extract_answer(completion, row.choices, mode)


def test_answer_text_mode_scores_an_options_text_as_its_letter() -> None:
    row = make_row("q", "C").model_copy(update={"question": "Which way is the door?\nA. left\nB. right\nC. ahead"})
    sample = score_sample("<think>x</think><answer>Ahead</answer>", row, answer_mode="answer_text")
    assert sample["letter"] == "C" and sample["correct"] and sample["answered"]
    wrong = score_sample("<think>x</think><answer>left</answer>", row, answer_mode="answer_text")
    assert wrong["letter"] == "A" and not wrong["correct"]
    assert score_sample("<think>x</think><answer>Ahead</answer>", row)["letter"] is None  # the paper's reading


def test_think_prefill_is_prepended_before_scoring() -> None:
    completion = "The door is right.</think><answer>B</answer>"  # the template already opened <think>
    row = make_row("q")
    plain = score_sample(completion, row)
    prefilled = score_sample(completion, row, think_prefill="<think>")
    assert not plain["format_ok"] and plain["think"] is None
    assert prefilled["format_ok"] and prefilled["think"] == "The door is right."
    assert prefilled["completion"] == completion  # the record keeps what the model generated
    assert plain["correct"] and prefilled["correct"]


@pytest.mark.parametrize(
    ("answer", "mra", "correct"),
    [("10", 1.0, True), ("10.4", 1.0, True), ("12", 0.7, False), ("15", 0.1, False), ("16", 0.0, False)],
)
def test_numeric_rows_score_by_mra(answer: str, mra: float, correct: bool) -> None:
    s = score_sample(f"<think>count</think><answer>{answer}</answer>", make_row("n", "10", choices=()))
    assert s["numeric"] and s["letter"] is None
    assert s["mra"] == pytest.approx(mra) and s["score"] == pytest.approx(mra) and s["correct"] is correct


def test_numeric_without_answer_scores_zero() -> None:
    s = score_sample("<think>many</think>", make_row("n", "3", choices=()))
    assert s["mra"] == 0.0 and not s["answered"]


def test_chance_level() -> None:
    assert chance_level(["A", "B", "C", "D"]) == 0.25
    assert chance_level(["A", "B"]) == 0.5
    assert chance_level([]) is None


def _samples(category: str, n: int, n_correct: int, choices: tuple[str, ...] = ("A", "B", "C", "D")) -> list[dict]:
    out = []
    for i in range(n):
        row = make_row(f"{category}{i}", "A", category=category, choices=choices)
        out.append(score_sample("<think>t</think><answer>" + ("A" if i < n_correct else "B") + "</answer>", row))
    return out


def test_pooled_differs_from_mean_of_categories_when_unbalanced() -> None:
    samples = _samples("big", 8, 8) + _samples("small", 2, 0)
    agg = aggregate(samples)
    assert agg["pooled_accuracy"] == pytest.approx(0.8)  # 8 of 10 questions
    assert agg["category_mean_accuracy"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2
    assert agg["pooled_accuracy"] != agg["category_mean_accuracy"]
    assert agg["per_category"]["big"] == {"accuracy": 1.0, "chance": 0.25, "n": 8}
    assert agg["per_category"]["small"]["accuracy"] == 0.0


def _from(source: str, samples: list[dict]) -> list[dict]:
    return [{**s, "question_id": f"{source}__{s['question_id']}", "data_source": source} for s in samples]


def test_two_benchmarks_get_per_source_accuracy_with_intervals_next_to_the_pooled_one() -> None:
    # the paper's two benchmarks in one test set: 30 UrbanVideo questions at 80%, 10 VSI-Bench ones at 20%
    samples = _from("urbanvideo", _samples("landmark_position", 30, 24)) + _from("vsibench", _samples("route", 10, 2))
    agg = aggregate(samples, bootstrap_samples=500, seed=1)
    assert agg["pooled_accuracy"] == pytest.approx(26 / 40)
    urban, vsi = agg["per_source"]["urbanvideo"], agg["per_source"]["vsibench"]
    assert (urban["n"], urban["accuracy"], vsi["n"], vsi["accuracy"]) == (
        30,
        pytest.approx(0.8),
        10,
        pytest.approx(0.2),
    )
    for part in (urban, vsi):
        lo, hi = part["ci95"]
        assert lo < part["accuracy"] < hi
    assert vsi["ci95"][1] - vsi["ci95"][0] > urban["ci95"][1] - urban["ci95"][0], "fewer questions, wider interval"
    assert per_source_accuracy(samples, bootstrap_samples=500, seed=1) == agg["per_source"], "seeded"
    assert list(aggregate(_samples("a", 3, 1))["per_source"]) == ["synthetic"], "one source: one entry"


def test_chance_per_category_from_number_of_choices() -> None:
    cats = per_category_accuracy(
        _samples("two", 2, 1, ("A", "B")) + _samples("mixed", 1, 1) + _samples("mixed", 1, 0, ("A", "B"))
    )
    assert cats["two"]["chance"] == 0.5
    assert cats["mixed"]["chance"] == pytest.approx((0.25 + 0.5) / 2)


def test_aggregate_fields() -> None:
    numeric = make_row("n", "10", category="count", choices=())
    samples = [*_samples("a", 3, 2), score_sample("<answer>12</answer>", numeric, completion_tokens=4)]
    agg = aggregate(samples)
    assert agg["n"] == 4 and agg["n_numeric"] == 1
    assert agg["mra"] == pytest.approx(0.7)
    assert agg["pooled_accuracy"] == pytest.approx((2 + 0.7) / 4)
    assert agg["format_compliance"] == pytest.approx(0.75)
    assert agg["answer_rate"] == 1.0
    assert agg["mean_completion_tokens"] == 4.0  # only samples with a count
    assert agg["per_category"]["count"]["chance"] is None
    lo, hi = agg["pooled_accuracy_ci95"]
    assert lo <= agg["pooled_accuracy"] <= hi


def test_a_model_answering_one_letter_scores_the_letter_prior() -> None:
    """The cpu-long GRPO runs answered B to all 216 test questions: 27.8%, the share of B among the solutions."""
    solutions = "AABBBCD"
    rows = [make_row(str(i), letter) for i, letter in enumerate(solutions)]
    constant = [score_sample("<think>x</think><answer>B</answer>", row) for row in rows]
    agg = aggregate(constant)
    assert agg["answer_shares"] == {"B": 1.0}
    assert agg["top_answer_share"] == 1.0
    assert agg["constant_answer_accuracy"] == pytest.approx(3 / 7)
    assert agg["pooled_accuracy"] == agg["constant_answer_accuracy"]  # nothing learnt beyond the prior
    varied = [score_sample(f"<answer>{a}</answer>", row) for a, row in zip("ABBCDDX", rows, strict=True)]
    dist = answer_distribution(varied)
    assert dist["answer_shares"] == {"A": 1 / 7, "B": 2 / 7, "C": 1 / 7, "D": 2 / 7, "none": 1 / 7}
    assert dist["top_answer_share"] == pytest.approx(2 / 7)


def test_answer_distribution_ignores_numeric_rows() -> None:
    numeric = make_row("n", "10", category="count", choices=())
    assert answer_distribution([score_sample("<answer>12</answer>", numeric)]) == {
        "answer_shares": None, "top_answer_share": None, "constant_answer_accuracy": None,
    }  # fmt: skip
    mixed = [score_sample("<answer>12</answer>", numeric), score_sample("<answer>A</answer>", make_row("a", "A"))]
    assert answer_distribution(mixed)["answer_shares"] == {"A": 1.0}


def test_aggregate_without_numeric_rows_has_no_mra() -> None:
    assert aggregate(_samples("a", 4, 1))["mra"] is None


def test_pooled_accuracy_empty_is_nan() -> None:
    assert math.isnan(pooled_accuracy([]))


def test_bootstrap_ci_contains_estimate_and_is_seeded() -> None:
    correct = [i % 5 < 3 for i in range(200)]  # 60%
    lo, hi = bootstrap_ci(correct, n=1000, seed=0)
    assert lo < 0.6 < hi
    assert bootstrap_ci(correct, n=1000, seed=0) == (lo, hi)
    assert bootstrap_ci(correct, n=1000, seed=1) != (lo, hi)


def test_bootstrap_ci_narrows_with_more_samples() -> None:
    small = [i % 5 < 3 for i in range(50)]
    large = [i % 5 < 3 for i in range(5000)]
    (lo_s, hi_s), (lo_l, hi_l) = bootstrap_ci(small), bootstrap_ci(large)
    assert hi_l - lo_l < (hi_s - lo_s) / 4  # ~1/sqrt(100) as wide
    assert lo_l < 0.6 < hi_l


def test_paired_difference_is_tighter_than_two_separate_intervals_when_the_models_agree() -> None:
    # 200 questions: the trained model keeps every answer of the base and fixes 20 more (+10 points)
    before = [i % 2 == 0 for i in range(200)]
    after = [b or i % 10 == 1 for i, b in enumerate(before)]
    paired = paired_difference(before, after, n=1000, seed=0)
    assert paired["n"] == 200 and paired["delta"] == pytest.approx(0.1)
    lo, hi = paired["ci95"]
    assert 0.0 < lo < 0.1 < hi, "every change is a fix: the gain's interval excludes 0"
    (lo_b, hi_b), (lo_a, _) = bootstrap_ci(before), bootstrap_ci(after)
    assert lo_a < hi_b, "the two separate intervals overlap all the same"
    assert hi - lo < 0.6 * (hi_b - lo_b)
    with pytest.raises(ValueError, match="3 before, 2 after"):
        paired_difference([1, 0, 1], [1, 0])


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_ci([True] * 5) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    with pytest.raises(ValueError):
        bootstrap_ci([True], n=0)
