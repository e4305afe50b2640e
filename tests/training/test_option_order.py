"""Reordering a training question's options so its correct letters are spread evenly (training_set.option_order)."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from embodied_r.data.records import parse_choices
from embodied_r.training.option_order import OptionLayoutError, balanced_letters, move_correct_option

QUESTION = "Which object appeared first?\nA. chair\nB. table\nC. lamp\nD. crate"


@pytest.mark.parametrize("target", list("ABCD"))
def test_the_correct_option_moves_to_its_new_letter_and_the_others_keep_their_order(target):
    moved = move_correct_option(QUESTION, "B", target)
    choices = parse_choices(moved)
    assert choices[target] == "table"
    assert [text for letter, text in choices.items() if letter != target] == ["chair", "lamp", "crate"]
    assert moved.splitlines()[0] == "Which object appeared first?"


def test_a_question_already_at_its_letter_is_unchanged():
    assert move_correct_option(QUESTION, "C", "C") == QUESTION


def test_options_that_are_not_the_trailing_lines_are_refused():
    with pytest.raises(OptionLayoutError, match="last lines"):
        move_correct_option(QUESTION + "\nAnswer with the letter.", "A", "B")
    with pytest.raises(OptionLayoutError, match="among the options"):
        move_correct_option(QUESTION, "A", "E")
    with pytest.raises(OptionLayoutError, match="last lines"):
        move_correct_option("Where?\nA) left\nB) right", "A", "B")


def questions(n: int, category: str = "c", letters: str = "ABCD", prefix: str = "q"):
    return [SimpleNamespace(question_id=f"{prefix}{i:03d}", category=category, choices=list(letters)) for i in range(n)]


def test_each_category_gets_every_letter_equally_often():
    qs = questions(103, "landmark_position") + questions(41, "obj_appearance_order", prefix="o")
    targets = balanced_letters(qs)
    for category, n in (("landmark_position", 103), ("obj_appearance_order", 41)):
        counts = Counter(targets[q.question_id] for q in qs if q.category == category)
        assert sum(counts.values()) == n and set(counts) == set("ABCD")
        assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_mixed_option_counts_use_only_each_questions_own_letters():
    # 2, 3 and 4 options interleaved (as object_rel_direction's): each question keeps to its own letters
    qs = [SimpleNamespace(question_id=f"q{i:03d}", category="c", choices=list("ABCD"[: 2 + i % 3])) for i in range(90)]
    targets = balanced_letters(qs)
    for q in qs:
        assert targets[q.question_id] in q.choices
    counts = Counter(targets.values())
    assert set(counts) == set("ABCD") and max(counts.values()) - min(counts.values()) <= 1, counts


def test_the_assignment_depends_only_on_the_questions_not_their_order():
    qs = questions(50)
    shuffled = list(qs)
    random.Random(0).shuffle(shuffled)
    assert balanced_letters(shuffled) == balanced_letters(qs)
    # not a fixed A, B, C, D cycle: ties are broken by the question id
    cycle = [balanced_letters(qs)[q.question_id] for q in qs][:8]
    assert cycle != list("ABCDABCD")
