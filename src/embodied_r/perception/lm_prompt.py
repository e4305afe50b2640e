"""The text given to the reasoning LM (reference §3): the one place that builds its chat messages.

Strings are the official Embodied-R ones:

* :data:`VIDEO_PREAMBLE` and the frame lines — ``derive_video_content_str`` in
  ``train/conver_format/VLM_perception_API.py`` (EmbodiedCity/Embodied-R.code, read in the fork
  B1ueDrops/Embodied-R.code);
* the user message — ``qa_w_content`` in the same file;
* :data:`SYSTEM_PROMPT` — ``system`` in ``infer/batch_inference.py`` (identical to ``SYSTEM_PROMPT`` of
  ``train/train.sh``), verbatim including its odd tail ``User: . Assistant:``.

Deviations, all deliberate: the official literals' backslash continuations embed runs of source indentation,
collapsed here; the action is the parsed, normalised action (lower case, one of ACTIONS) instead of point 1's raw
text; an unparsable answer reads ``After an unknown action, Observe: <whole answer>`` where the official code
writes ``After None, Observe: <whole answer>``.

>>> video_text([FrameDescription(index=0, observation="A room.", raw="A room.")]).splitlines()[-1]
'Frame 0: Observe: A room.'
"""

from __future__ import annotations

from collections.abc import Sequence

from embodied_r.perception.prompts import question_for_prompt
from embodied_r.perception.records import DescribedSample, FrameDescription

SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> \n<answer> answer here </answer>. Ensure that "
    "your answer is consistent with and directly derived from your thinking process, maintaining logical "
    "coherence between the two sections. User: . Assistant:"
)

VIDEO_PREAMBLE = (
    "The content of the video will be described in the form of text. The 0th frame is the initial frame, which "
    "includes the scene that agent observe at the initial position. The agent keeps moving, thus constantly "
    "obtaining new visual observations (frames). The last frame is the visual observation at the current position."
)

#: What stands for the action when point 1 could not be parsed (the official code writes "None").
UNKNOWN_ACTION = "an unknown action"

USER_INTRO = (
    "Please assume the role of an agent. The video represents your egocentric observations from the past to the "
    "present."
)


def frame_line(position: int, frame: FrameDescription) -> str:
    """``Frame 0: Observe: …`` for the first key frame, ``Frame i: After <action>, Observe: …`` after it."""
    if position == 0:
        return f"Frame 0: Observe: {frame.observation}"
    return f"Frame {position}: After {frame.action or UNKNOWN_ACTION}, Observe: {frame.observation}"


def video_text(frames: Sequence[FrameDescription]) -> str:
    """The video as text: the fixed preamble, then one line per key frame (numbered 0.. by position)."""
    return "\n".join([VIDEO_PREAMBLE, *(frame_line(i, frame) for i, frame in enumerate(frames))])


def user_message(sample: DescribedSample) -> str:
    """The user turn: the agent role, the video text between ``<`` and ``>``, then ``Question:`` with the choices."""
    return (
        f"{USER_INTRO} Video content:\n<\n{video_text(sample.frames)}\n>\n"
        f"Question: {question_for_prompt(sample.question)}"
    )


def build_messages(sample: DescribedSample, *, system_prompt: bool = True) -> list[dict[str, str]]:
    """Chat messages for the LM: the R1 system prompt (unless ``system_prompt=False``) and the user turn.

    Training (GRPO rows) and evaluation both call this, so the LM always sees the same text.
    """
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if system_prompt else []
    messages.append({"role": "user", "content": user_message(sample)})
    return messages
