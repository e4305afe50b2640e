"""Parsing later-frame answers: real-looking VLM outputs, including the nasty ones."""

from __future__ import annotations

import pytest

from embodied_r.perception.parse import normalize_action, parse_answer, split_points
from embodied_r.vocabulary import ACTIONS

GOOD = [
    (
        "1. Move forward\n2. A red chair appears ahead.\n3. The lamp is to the left.",
        "move forward",
        "A red chair appears ahead. The lamp is to the left.",
    ),
    (
        "1. Action: Rotate left.\n2. New: a blue door to the left.\n3. None.",
        "rotate left",
        "New: a blue door to the left. None.",
    ),
    (
        "**1. Action:** Tilt downward\n**2. New information:** the floor is visible below.\n**3. Objects:** none",
        "tilt downward",
        "**2. New information:** the floor is visible below.\n**3. Objects:** none",
    ),
    (
        "### 1. Move backward\n### 2. The wall recedes.\n### 3. The red chair is ahead.",
        "move backward",
        "The wall recedes. The red chair is ahead.",
    ),
    ("1) turn left\n2) A shelf appears ahead-left\n3) -", "rotate left", "A shelf appears ahead-left -"),
    (
        "1. The camera turned to the right.\n2. A window.\n3. No question objects.",
        "rotate right",
        "A window. No question objects.",
    ),
    ("1. MOVE UPWARD\n2. Roofs below.\n3. The tower is ahead.", "move upward", "Roofs below. The tower is ahead."),
    ("1. Ascend\n2. Roofs below.", "move upward", "Roofs below."),
    ("1. Look up.\n2. The ceiling.\n3. Nothing.", "tilt upward", "The ceiling. Nothing."),
    (
        "1. Move to the left.\n2. A plant 2.5 m away on the right.\n3. The plant.",
        "move left",
        "A plant 2.5 m away on the right. The plant.",
    ),
    ("1. Go straight ahead\n2. The corridor continues.\n3. n/a", "move forward", "The corridor continues. n/a"),
    (
        "Here is my analysis:\n1. Move right.\n2. A table is to the right.\n3. The table is to the right.",
        "move right",
        "A table is to the right. The table is to the right.",
    ),
    (
        "1. Move forward. 2. A red chair is ahead. 3. The lamp is behind.",
        "move forward",
        "A red chair is ahead. The lamp is behind.",
    ),
    ("1. Descending\n2. Cars below.\n3. -", "move downward", "Cars below. -"),
    ("1. Tilt down\n2. Floor.\n3. -", "tilt downward", "Floor. -"),
    (
        "- 1. rotate right\n- 2. a sofa to the right\n- 3. the sofa is to the right",
        "rotate right",
        "a sofa to the right the sofa is to the right",
    ),
]


@pytest.mark.parametrize(("text", "action", "observation"), GOOD)
def test_parses_real_looking_answers(text: str, action: str, observation: str) -> None:
    parsed = parse_answer(text)
    assert parsed.action == action
    if "**2." in observation:  # markdown-bold markers: only check the content survives
        assert "the floor is visible below" in parsed.observation and "none" in parsed.observation
    else:
        assert parsed.observation == observation


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I'm sorry, I cannot see the images.",
        "Rotate left.",  # no numbered points
        "1. Rotate left and then move forward.\n2. A door.\n3. -",  # two actions: ambiguous
        "1. The agent stayed still.\n2. Nothing new.\n3. -",  # no action
        "1. Move diagonally.\n2. A door.\n3. -",
        "asdkjh 2390 ###",
        "2. A door appears.\n3. The lamp.",  # no point 1
    ],
)
def test_unparsable_answers_keep_the_whole_text(text: str) -> None:
    parsed = parse_answer(text)
    assert parsed.action is None
    assert parsed.observation == text.strip()


@pytest.mark.parametrize("action", ACTIONS)
def test_every_canonical_action_in_any_case(action: str) -> None:
    assert normalize_action(action) == action
    assert normalize_action(action.upper() + ".") == action
    assert normalize_action(f"**{action.title()}**") == action
    assert parse_answer(f"1. {action}\n2. x\n3. y").action == action


def test_distances_are_not_point_markers() -> None:
    assert split_points("1. Move forward\n2.5 m ahead there is a chair\n2. A door.") == (
        "Move forward\n2.5 m ahead there is a chair",
        "A door.",
        None,
    )


def test_directions_in_observations_do_not_confuse_the_action() -> None:
    parsed = parse_answer("1. Move forward\n2. A lamp to the left, I turned my head right\n3. -")
    assert parsed.action == "move forward"
