"""Snapshot tests of every prompt text: a changed prompt is a visible diff (UPDATE_SNAPSHOTS=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embodied_r.perception.lm_prompt import SYSTEM_PROMPT, build_messages, video_text
from embodied_r.perception.prompts import (
    PROMPT_VERSION,
    action_list,
    first_frame_prompt,
    later_frame_prompt,
    question_for_prompt,
)
from embodied_r.perception.records import DescribedSample, FrameDescription

SNAPSHOTS = Path(__file__).parent / "snapshots"
QUESTION = "Question: If I am facing the red chair, where is the blue lamp?\nA. to the left\nB. to the right\nC. behind"
QUESTION_2 = "Which did I see first?\nA. green ball\nB. yellow crate"


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"snapshot {path} missing; run with UPDATE_SNAPSHOTS=1 to write it")
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} changed: bump PROMPT_VERSION if intended, then rerun with UPDATE_SNAPSHOTS=1"
    )


def sample() -> DescribedSample:
    return DescribedSample(
        question_id="q1",
        video_id="v1",
        scene_name="s1",
        category="object_rel_direction",
        split="test",
        question=QUESTION,
        answer="A",
        choices=["A", "B", "C"],
        data_source="embedded",
        keyframe_indices=[0, 10, 20],
        frames=[
            FrameDescription(index=0, observation="A red chair is ahead-left.", raw="A red chair is ahead-left."),
            FrameDescription(index=10, action="rotate left", observation="A blue lamp appears ahead.", raw="..."),
            FrameDescription(index=20, action=None, observation="I cannot tell what changed.", raw="..."),
        ],
        mode="per_question",
        backend="oracle",
        model="oracle",
        prompt_version=PROMPT_VERSION,
    )


def test_prompt_version_is_pinned() -> None:
    # Changing a prompt text must bump the version (it is part of every cache key).
    assert PROMPT_VERSION == "v1"


def test_first_frame_prompt_snapshot() -> None:
    assert_snapshot("first_frame_per_question.txt", first_frame_prompt([QUESTION]))


def test_later_frame_prompt_snapshot() -> None:
    assert_snapshot("later_frame_per_question.txt", later_frame_prompt([QUESTION]))


def test_per_video_prompts_snapshot() -> None:
    assert_snapshot("first_frame_per_video.txt", first_frame_prompt([QUESTION, QUESTION_2]))
    assert_snapshot("later_frame_per_video.txt", later_frame_prompt([QUESTION, QUESTION_2]))


def test_lm_messages_snapshot() -> None:
    messages = build_messages(sample())
    assert [m["role"] for m in messages] == ["system", "user"]
    assert_snapshot("lm_system.txt", messages[0]["content"])
    assert_snapshot("lm_user.txt", messages[1]["content"])
    assert build_messages(sample(), system_prompt=False) == messages[1:]


def test_prompts_are_question_conditioned() -> None:
    for prompt in (first_frame_prompt([QUESTION]), later_frame_prompt([QUESTION])):
        assert question_for_prompt(QUESTION) in prompt
        assert "don't answer this question" in prompt
    assert first_frame_prompt([QUESTION]) != first_frame_prompt([QUESTION_2])
    both = later_frame_prompt([QUESTION, QUESTION_2])
    assert question_for_prompt(QUESTION) in both and question_for_prompt(QUESTION_2) in both


def test_action_list_reads_as_the_official_prompt() -> None:
    assert action_list() == (
        "Move forward, move backward, move left, move right, move upward, move downward, rotate left, "
        "rotate right, tilt downward, or tilt upward."
    )


def test_no_indentation_runs_in_prompts() -> None:
    for text in (first_frame_prompt([QUESTION]), later_frame_prompt([QUESTION]), SYSTEM_PROMPT):
        assert "   " not in text


def test_question_for_prompt() -> None:
    assert question_for_prompt("Video 3. Question: Where?\nA. x") == "Where?\nA. x"
    assert question_for_prompt("  Where?\nA. x ") == "Where?\nA. x"


def test_empty_question_list_is_an_error() -> None:
    with pytest.raises(ValueError):
        first_frame_prompt([])


def test_video_text_lines() -> None:
    lines = video_text(sample().frames).splitlines()
    assert lines[1] == "Frame 0: Observe: A red chair is ahead-left."
    assert lines[2] == "Frame 1: After rotate left, Observe: A blue lamp appears ahead."
    assert lines[3] == "Frame 2: After an unknown action, Observe: I cannot tell what changed."
