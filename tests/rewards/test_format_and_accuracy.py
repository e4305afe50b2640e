"""The format and accuracy rewards (reference §5) on hand-written completions, the nasty ones included."""

from __future__ import annotations

import pytest

from embodied_r.rewards.accuracy import accuracy_reward, make_accuracy_reward
from embodied_r.rewards.completions import completion_text
from embodied_r.rewards.format import format_reward, make_format_reward
from tests.rewards.helpers import ABCD, QUESTION

LONG_THINK = "I move forward and look around. " * 400

# (completion, strict format, format with partial_credit=0.5, accuracy answer_tag, accuracy official_scan)
# for a row whose solution is "B" and choices A–D.
TABLE = [
    pytest.param("<think>The sofa is left of me.</think><answer>B</answer>", 1, 1, 1, 1, id="clean"),
    pytest.param("\n  <think>\nreasoning\n</think>\n\n<answer> B </answer>\n", 1, 1, 1, 1, id="whitespace"),
    pytest.param("<think>I thought C. Then I turned.</think><answer>B</answer>", 1, 1, 1, 0, id="think-C-wins"),
    pytest.param("<think>Option B. is tempting</think><answer>A</answer>", 1, 1, 0, 1, id="think-B-wins"),
    pytest.param("<think>hmm</think><answer></answer>", 0, 0.5, 0, 0, id="empty-answer"),
    pytest.param("<think>   </think><answer>B</answer>", 0, 0.5, 1, 1, id="blank-think"),
    pytest.param("<think>x</think><answer>A</answer><answer>B</answer>", 0, 0.5, 1, 1, id="repeated-answer"),
    pytest.param("<think>x</think><think>y</think><answer>B</answer>", 0, 0.5, 1, 1, id="repeated-think"),
    pytest.param("<think>x</think><answer>b</answer>", 1, 1, 1, 1, id="lower-case-lone"),
    pytest.param("<think>x</think><answer>b. the red chair</answer>", 1, 1, 0, 1, id="lower-case-with-text"),
    pytest.param("<think>x</think><answer>(B)</answer>", 1, 1, 1, 1, id="parenthesised"),
    pytest.param("<think>x</think><answer>B. The red chair</answer>", 1, 1, 1, 1, id="letter-dot-text"),
    pytest.param("<think>x</think><answer>B</answer> I hope this helps.", 0, 0.5, 1, 1, id="text-after"),
    pytest.param("Sure! <think>x</think><answer>B</answer>", 0, 0.5, 1, 1, id="text-before"),
    pytest.param("<think>x</think> so <answer>B</answer>", 0, 0.5, 1, 1, id="text-between"),
    pytest.param("<answer>B</answer>", 0, 0.25, 1, 1, id="missing-think"),
    pytest.param("<think>B is right</think>", 0, 0.25, 0, 1, id="missing-answer"),
    pytest.param("<think>x</think><answer>B", 0, 0.25, 0, 1, id="unclosed-answer"),
    pytest.param("<think>x<answer>B</answer>", 0, 0.25, 1, 1, id="unclosed-think"),
    pytest.param("<think><think>x</think></think><answer>B</answer>", 0, 0.5, 1, 1, id="nested-think"),
    pytest.param("<think>x</think><answer><answer>B</answer></answer>", 0, 0.5, 1, 1, id="nested-answer"),
    pytest.param("<answer>B</answer><think>x</think>", 0, 0.25, 1, 1, id="wrong-order"),
    pytest.param("<THINK>x</THINK><ANSWER>B</ANSWER>", 0, 0, 0, 1, id="upper-case-tags"),
    pytest.param("<think>x</think><answer>E</answer>", 1, 1, 0, 0, id="not-among-choices"),
    pytest.param("<think>x</think><answer>A or B</answer>", 1, 1, 0, 1, id="a-or-b"),
    pytest.param("<think>x</think><answer>（Ｂ）</answer>", 1, 1, 1, 0, id="fullwidth"),
    pytest.param("<think>Überlegung → links</think><answer>B</answer>", 1, 1, 1, 1, id="unicode-think"),
    pytest.param(f"<think>{LONG_THINK}</think><answer>B</answer>", 1, 1, 1, 1, id="very-long-think"),
    pytest.param("<think>so $\\boxed{D}$</think><answer>B</answer>", 1, 1, 1, 0, id="boxed-in-think"),
    pytest.param("<think>x</think><answer>Answer: C</answer>", 1, 1, 0, 0, id="wrong-letter"),
    pytest.param("", 0, 0, 0, 0, id="empty"),
    pytest.param("The answer is B.", 0, 0, 0, 1, id="no-tags"),
]


@pytest.mark.parametrize(("text", "fmt", "fmt_partial", "acc_tag", "acc_scan"), TABLE)
def test_format_and_accuracy_table(text: str, fmt: float, fmt_partial: float, acc_tag: float, acc_scan: float) -> None:
    kwargs = {"solution": ["B"], "choices": [ABCD]}
    assert format_reward([text], **kwargs) == [fmt]
    assert make_format_reward(partial_credit=0.5)([text], **kwargs) == [fmt_partial]
    assert accuracy_reward([text], **kwargs) == [acc_tag]
    assert make_accuracy_reward("official_scan")([text], **kwargs) == [acc_scan]


def test_conversational_completions_equal_plain_ones() -> None:
    texts = ["<think>x</think><answer>B</answer>", "<think>x</think><answer>C</answer>"]
    convs = [[{"role": "assistant", "content": t}] for t in texts]
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in texts]
    kwargs = {"solution": ["B", "B"], "choices": [ABCD, ABCD]}
    assert accuracy_reward(convs, **kwargs) == accuracy_reward(texts, **kwargs) == accuracy_reward(parts, **kwargs)
    assert format_reward(convs, **kwargs) == [1.0, 1.0]
    assert completion_text(parts[0]) == texts[0]


def test_accuracy_numeric_rows_use_mra_and_missing_choices_are_inferred() -> None:
    completions = ["<think>x</think><answer>12</answer>", "<think>x</think><answer>B</answer>", "<answer>3</answer>"]
    # Row 0 numeric (empty choices), row 1 multiple choice, row 2 numeric with no <think>: MRA still applies.
    assert accuracy_reward(completions, solution=["10", "B", "3.0"], choices=[[], ABCD, []]) == [0.7, 1.0, 1.0]
    # Without a choices column: a letter solution means A–H, anything else is numeric.
    assert accuracy_reward(completions, solution=["10", "B", "3"]) == [0.7, 1.0, 1.0]
    with pytest.raises(ValueError, match="non-numeric solution"):
        accuracy_reward(["<answer>3</answer>"], solution=["three"], choices=[[]])


def test_answer_text_accuracy_reads_option_texts_from_the_question_column() -> None:
    completions = [f"<think>x</think><answer>{a}</answer>" for a in ("Right", "B", "left", "right, maybe")]
    text_reward = make_accuracy_reward("answer_text")
    assert text_reward(completions, solution=["B"] * 4, question=[QUESTION] * 4, choices=[ABCD] * 4) == [
        1.0, 1.0, 0.0, 0.0,
    ]  # fmt: skip
    # The paper's reading ignores option texts; answer_text without the question column fails loudly.
    assert make_accuracy_reward("answer_tag")(completions, solution=["B"] * 4, question=[QUESTION] * 4) == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="needs the question"):
        text_reward(completions[:1], solution=["B"])
    with pytest.raises(ValueError, match="accuracy mode must be one of"):
        make_accuracy_reward("text")  # type: ignore[arg-type]
