"""The VLM prompts of the perception step (reference §2), versioned.

The texts are the official Embodied-R prompts, from ``train/conver_format/VLM_perception_API.py`` of
the authors' code (EmbodiedCity/Embodied-R.code; read in the fork B1ueDrops/Embodied-R.code), with one
change: the official string literals use backslash line continuations, which embed runs of source
indentation in the prompt; here that whitespace is collapsed to single spaces and line ends are trimmed.
The action list is rendered from :data:`embodied_r.vocabulary.ACTIONS` and reads exactly as the official
one ("Move forward, move backward, ..., tilt downward, or tilt upward.").

The per-video mode (not in the paper) names all of a video's questions in one prompt.

**Any change to a prompt text must bump** :data:`PROMPT_VERSION` (it is part of every cache key), and
shows up as a diff of the snapshot files in ``tests/perception/snapshots/``.
"""

from __future__ import annotations

from collections.abc import Sequence

from embodied_r.vocabulary import ACTIONS

PROMPT_VERSION = "v1"


def question_for_prompt(question: str) -> str:
    """The question as the official code puts it into prompts: the text after the first ``Question:``.

    >>> question_for_prompt("Video: ...\\nQuestion: Where is the door?\\nA. left")
    'Where is the door?\\nA. left'
    """
    index = question.find("Question:")
    return (question[index + len("Question:") :] if index != -1 else question).strip()


def action_list() -> str:
    """The ten actions as one sentence: ``Move forward, move backward, ..., or tilt upward.``"""
    text = ", ".join(ACTIONS[:-1]) + f", or {ACTIONS[-1]}."
    return text[0].upper() + text[1:]


def _objects_clause(questions: Sequence[str]) -> str:
    """'if the objects ... appear ..., describe them: ... To reiterate, don't answer ...' for one or more questions."""
    qs = [question_for_prompt(q) for q in questions]
    if not qs:
        raise ValueError("a perception prompt needs at least one question")
    if len(qs) == 1:
        return (
            "if the objects mentioned in the following question appear in the images, please make sure to "
            f"describe them: '{qs[0]}'. To reiterate, don't answer this question and don't give any option, "
            "you just need to observe whether the image contains the objects mentioned in the question/option."
        )
    listed = "\n".join(f"Question {i}: '{q}'" for i, q in enumerate(qs, start=1))
    return (
        "if the objects mentioned in the following questions appear in the images, please make sure to "
        f"describe them:\n{listed}\nTo reiterate, don't answer these questions and don't give any option, "
        "you just need to observe whether the image contains the objects mentioned in the questions/options."
    )


def first_frame_prompt(questions: Sequence[str]) -> str:
    """Prompt for key frame 0 alone: the scene, objects by colour and shape, egocentric relations, asked objects.

    ``questions`` holds one question (per-question mode, the paper) or all of a video's questions (per-video mode).
    """
    return (
        "I provide you with the first-person perspective of an intelligent agent. "
        "Please output a description of the current observed scene. "
        "When describing the scene, focus on using features such as color and shape to characterize the objects. "
        "Additionally, emphasize the spatial relationship between the agent itself and the surrounding environment. "
        "You should first visualize the three-dimensional space around the agent. "
        "When describing relative positions, use terms such as 'to the left,' 'ahead-left,' or 'below,' rather "
        "than merely stating their positions within the field of view. "
        f"More important, {_objects_clause(questions)}\n"
        "The response should be concise and clear."
    )


def later_frame_prompt(questions: Sequence[str]) -> str:
    """Prompt for key frame k with key frame k−1 ("before and after the action"): the three numbered points.

    1. the action, one of the ten actions; 2. newly visible spatial information; 3. the questions' objects.
    """
    clause = _objects_clause(questions)
    return (
        "I provide you with the agent's first-person perspective. "
        "Two images represent the field of view before and after the action. Please output:\n"
        "1. Based on the relative positional changes of objects in the field of view, determine the action "
        "performed (only output one of the following options without redundant content): "
        f"{action_list()}\n"
        "2. Analyze the post-action field of view compared to the pre-action view, identifying any newly captured "
        "spatial information. This includes objects that were previously invisible or unclear. Note that many "
        "objects of the same category may appear repetitive, such as buildings in a city, but they might differ in "
        "color or shape. When describing these, include features such as color and shape. Additionally, focus on "
        "the relationship between the agent and its surrounding environment. To do so, first imagine the "
        "three-dimensional scene around the agent. When describing relative positions, use terms such as 'to the "
        "left,' 'in the front-left,' or 'below' rather than simply referring to their positions in the field of "
        "view.\n"
        f"3. {clause[0].upper()}{clause[1:]}\n"
        "Ensure responses are concise and clear."
    )


def frame_prompt(k: int, questions: Sequence[str]) -> str:
    """The prompt for key frame ``k``: :func:`first_frame_prompt` for 0, :func:`later_frame_prompt` after."""
    return first_frame_prompt(questions) if k == 0 else later_frame_prompt(questions)
