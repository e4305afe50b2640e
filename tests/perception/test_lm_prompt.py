"""The LM's input (reference §3): structure of the user message and the system prompt."""

from __future__ import annotations

from embodied_r.perception.lm_prompt import SYSTEM_PROMPT, VIDEO_PREAMBLE, build_messages
from tests.perception.test_prompts import sample


def test_user_message_structure() -> None:
    user = build_messages(sample())[1]["content"]
    assert user.startswith("Please assume the role of an agent. The video represents your egocentric observations")
    head, rest = user.split("\n<\n", 1)
    video, question = rest.split("\n>\n", 1)
    assert head.endswith("Video content:")
    assert video.startswith(VIDEO_PREAMBLE)
    assert (
        question
        == "Question: If I am facing the red chair, where is the blue lamp?\nA. to the left\nB. to the right\nC. behind"
    )
    assert "Question: Question:" not in user


def test_system_prompt_is_r1_plus_consistency() -> None:
    assert "<think> </think>" in SYSTEM_PROMPT and "<answer> </answer>" in SYSTEM_PROMPT
    assert "consistent with and directly derived from your thinking process" in SYSTEM_PROMPT
    assert build_messages(sample())[0] == {"role": "system", "content": SYSTEM_PROMPT}
