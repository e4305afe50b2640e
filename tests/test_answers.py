"""Answer extraction (reference §5, §6): the letter, the reasoning, numbers and MRA, including the nasty inputs."""

from __future__ import annotations

import pytest

from embodied_r.answers import (
    MRA_TOLERANCES,
    extract_answer,
    extract_number,
    extract_think,
    mean_relative_accuracy,
)

ABCD = ("A", "B", "C", "D")

# (completion, expected letter with mode="answer_tag", expected letter with mode="official_scan")
LETTER_TABLE = [
    pytest.param("<think>The sofa is left of me.</think><answer>B</answer>", "B", "B", id="clean"),
    pytest.param("\n <think>\nreasoning\n</think>\n\n<answer> B </answer>\n", "B", "B", id="whitespace"),
    pytest.param("<think>I thought C. Then I turned.</think><answer>B</answer>", "B", "C", id="think-dot-wins"),
    pytest.param("<think>my answer a is wrong</think><answer>B</answer>", "B", "A", id="first-answer-x-wins"),
    pytest.param("<think>so $\\boxed{D}$</think><answer>B</answer>", "B", "D", id="boxed-in-think-wins"),
    pytest.param("<think>hmm</think><answer></answer>", None, None, id="empty-answer"),
    pytest.param("<think>x</think><answer>   </answer>", None, None, id="blank-answer"),
    pytest.param("<think>x</think><answer>A</answer><answer>C</answer>", "C", "C", id="repeated-answer-last"),
    pytest.param("<think>x</think><answer>b</answer>", "B", "B", id="lower-case-lone"),
    pytest.param("<think>x</think><answer> c </answer>", "C", "C", id="lower-case-lone-spaced"),
    pytest.param("<think>x</think><answer>(b)</answer>", "B", "B", id="lower-case-lone-parenthesised"),
    pytest.param("<think>x</think><answer>[d]</answer>", "D", "D", id="lower-case-lone-bracketed"),
    pytest.param("<think>x</think><answer>b.</answer>", "B", "B", id="lower-case-lone-dot"),
    pytest.param("<think>x</think><answer>a</answer>", "A", "A", id="lower-case-lone-a"),
    pytest.param("<think>x</think><answer>e</answer>", None, None, id="lower-case-lone-not-among-choices"),
    pytest.param("<think>x</think><answer>b. the red chair</answer>", None, "B", id="lower-case-with-text"),
    pytest.param("<think>x</think><answer>the answer is b</answer>", None, "B", id="lower-case-after-prefix"),
    pytest.param("<think>x</think><answer>a red chair</answer>", None, "A", id="lower-case-article"),
    pytest.param("<think>x</think><answer>b or c</answer>", None, "C", id="lower-case-two-letters"),
    pytest.param("<think>x</think><answer>(B)</answer>", "B", "B", id="parenthesised"),
    pytest.param("<think>x</think><answer>[C]</answer>", "C", "C", id="bracketed"),
    pytest.param("<think>x</think><answer>B.</answer>", "B", "B", id="letter-dot"),
    pytest.param("<think>x</think><answer>B. The red chair</answer>", "B", "B", id="letter-dot-text"),
    pytest.param("<think>x</think><answer>B) turn left</answer>", "B", "B", id="letter-paren-text"),
    pytest.param("<think>x</think><answer>(B) turn left</answer>", "B", "B", id="paren-letter-text"),
    pytest.param("<think>x</think><answer>B: 3 meters</answer>", "B", "B", id="letter-colon-text"),
    pytest.param("<think>x</think><answer>The answer is B.</answer>", "B", "B", id="the-answer-is"),
    pytest.param("<think>x</think><answer>Answer: C</answer>", "C", "C", id="answer-colon"),
    pytest.param("<think>x</think><answer>option (D)</answer>", "D", "D", id="option-prefix"),
    pytest.param("<think>x</think><answer>B</answer> I hope this helps.", "B", "B", id="text-after-answer"),
    pytest.param("<answer>B</answer>", "B", "B", id="missing-think"),
    pytest.param("<think>x</think><answer>B", None, "B", id="unclosed-answer"),
    pytest.param("<think>x</think><answer><answer>B</answer></answer>", "B", "B", id="nested-answer"),
    pytest.param("<think>x</think><answer>E</answer>", None, None, id="not-among-choices"),
    pytest.param("<think>x</think><answer>A or B</answer>", None, "B", id="a-or-b"),
    pytest.param("<think>x</think><answer>(A) or (B)</answer>", None, "B", id="paren-a-or-paren-b"),
    pytest.param("<think>x</think><answer>A. or B.</answer>", None, "B", id="a-dot-or-b-dot"),
    pytest.param("<think>x</think><answer>A/B</answer>", None, "A", id="a-slash-b-nonoverlap"),
    pytest.param("<think>x</think><answer>A, B</answer>", None, "B", id="a-comma-b"),
    pytest.param("<think>x</think><answer>B red chair</answer>", None, "B", id="no-delimiter"),
    pytest.param("<think>x</think><answer>A red chair</answer>", None, "A", id="article-like"),
    pytest.param("<think>x</think><answer>B, next to a lamp</answer>", None, "A", id="article-a-wins-scan"),
    pytest.param("<think>x</think><answer>Bed</answer>", None, None, id="word-starting-with-letter"),
    pytest.param("<think>x</think><answer>（Ｂ）</answer>", "B", None, id="fullwidth-unicode"),
    pytest.param("<think>x</think><answer>\u200bB\u200b</answer>", "B", "B", id="zero-width-space"),
    pytest.param("<think>Überlegung: ½ → gauche</think><answer>C</answer>", "C", "C", id="unicode-think"),
    pytest.param("<THINK>x</THINK><ANSWER>B</ANSWER>", None, "B", id="upper-case-tags"),
    pytest.param("<think>B is right</think>", None, "B", id="no-answer-block"),
    pytest.param("", None, None, id="empty"),
    pytest.param("<think>" + "step forward " * 3000 + "</think><answer>D</answer>", "D", "D", id="very-long-think"),
    pytest.param("<think>x</think><answer>C. turn left and I stop</answer>", "C", "C", id="and-pronoun-not-option"),
]


@pytest.mark.parametrize(("text", "tag", "scan"), LETTER_TABLE)
def test_extract_answer_both_modes(text: str, tag: str | None, scan: str | None) -> None:
    assert extract_answer(text, ABCD) == tag
    assert extract_answer(text, ABCD, mode="official_scan") == scan


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        (" B.\n", "B"),
        ("(C)", "C"),
        ("The answer is D", "D"),
        ("<answer>A</answer>", "A"),
        ("b", None),  # free text: a lone lower-case letter counts only inside <answer>
        ("<answer>b</answer>", "B"),
        ("I think B", None),
        ("", None),
        ("Z", None),
    ],
)
def test_bare_mode_reads_one_letter_replies(reply: str, expected: str | None) -> None:
    assert extract_answer(reply, ABCD, mode="bare") == expected


def test_choices_restrict_letters() -> None:
    assert extract_answer("<answer>E</answer>", "ABCDE") == "E"
    assert extract_answer("<answer>E</answer>", ["A", "B"]) is None
    assert extract_answer("<answer>A</answer>", ()) is None  # a numeric row has no letters
    with pytest.raises(ValueError, match="unknown answer mode"):
        extract_answer("<answer>A</answer>", ABCD, mode="anything")  # type: ignore[arg-type]


ORDER = "Order?\nA. gray crate, white lamp\nB. white lamp, gray crate\nC. to the left\nD. To the left."


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("white lamp, gray crate", "B"),  # an option's text, exactly
        ("  Gray  Crate, White Lamp. ", "A"),  # case, spacing and a final full stop aside
        ("ＷＨＩＴＥ lamp, gray crate", "B"),  # NFKC
        ("B", "B"),  # a letter still reads as a letter
        ("A. white lamp, gray crate", "A"),  # ... and wins over the text after it
        ("to the left", None),  # two options share the text: ambiguous
        ("gray crate", None),  # part of an option is not the option
        ("white lamp, gray crate, black globe", None),
        ("", None),
    ],
)
def test_answer_text_mode_reads_one_options_exact_text(content: str, expected: str | None) -> None:
    text = f"<think>x</think><answer>{content}</answer>"
    assert extract_answer(text, ABCD, mode="answer_text", question=ORDER) == expected


def test_answer_text_mode_needs_the_question_and_respects_the_choices() -> None:
    with pytest.raises(ValueError, match="needs the question"):
        extract_answer("<answer>white lamp, gray crate</answer>", ABCD, mode="answer_text")
    assert extract_answer("<answer>white lamp, gray crate</answer>", "AC", "answer_text", question=ORDER) is None
    assert extract_answer("<think>x</think>", ABCD, mode="answer_text", question=ORDER) is None  # no block
    assert extract_answer("<answer>white lamp, gray crate</answer>", ABCD, question=ORDER) is None  # answer_tag


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think> left of the tree </think><answer>A</answer>", "left of the tree"),
        ("<think>first</think><think>second</think><answer>A</answer>", "first"),
        ("<think>   </think><answer>A</answer>", None),
        ("<think>unclosed <answer>A</answer>", None),
        ("<answer>A</answer>", None),
        ("<think><think>inner</think></think>", "inner"),
        ("<think>line 1\nline 2</think>", "line 1\nline 2"),
    ],
)
def test_extract_think(text: str, expected: str | None) -> None:
    assert extract_think(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>3</answer>", 3.0),
        ("<answer>about 2.5 meters</answer>", 2.5),
        ("<answer>-1.25</answer>", -1.25),
        ("<answer>.5</answer>", 0.5),
        ("<answer>1,250 cm</answer>", 1250.0),
        ("<answer>three</answer>", 3.0),
        ("<answer>Twelve chairs</answer>", 12.0),
        ("<answer>3.5 m, maybe 4</answer>", 3.5),
        ("<answer>two or 5</answer>", 2.0),
        ("<think>7 chairs</think><answer>none</answer>", None),
        ("<think>7 chairs</think>", None),
        ("<answer>room2</answer>", None),
        ("<answer>４</answer>", 4.0),
    ],
)
def test_extract_number(text: str, expected: float | None) -> None:
    assert extract_number(text) == expected


def test_extract_number_bare_reads_whole_text() -> None:
    assert extract_number("I count 4 chairs", mode="bare") == 4.0
    assert extract_number("I count 4 chairs") is None


def test_mra_tolerances_are_the_reference_thresholds() -> None:
    thetas = [round(1 - t, 2) for t in MRA_TOLERANCES]
    assert thetas == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        (10.0, 10.0, 1.0),
        (10.5, 10.0, 1.0),  # 5% off: exactly on the tightest tolerance, counted in
        (10.51, 10.0, 0.9),
        (9.5, 10.0, 1.0),
        (12.0, 10.0, 0.7),  # 20%: within 0.50 … 0.20
        (15.0, 10.0, 0.1),  # 50%: only θ = 0.50
        (15.01, 10.0, 0.0),
        (5.0, 10.0, 0.1),
        (30.0, 10.0, 0.0),
        (-10.0, 10.0, 0.0),
        (-2.2, -2.0, 0.9),  # relative to |y|
        (0.0, 0.0, 1.0),
        (0.1, 0.0, 0.0),
        (None, 3.0, 0.0),
        (float("nan"), 3.0, 0.0),
        (float("inf"), 3.0, 0.0),
    ],
)
def test_mean_relative_accuracy(pred: float | None, gt: float, expected: float) -> None:
    assert mean_relative_accuracy(pred, gt) == pytest.approx(expected)


def test_mra_rejects_non_finite_ground_truth() -> None:
    with pytest.raises(ValueError, match="finite"):
        mean_relative_accuracy(1.0, float("nan"))
