"""Synthetic described samples for the data-quality suite tests: a good batch and bad-sample builders."""

from __future__ import annotations

from collections.abc import Sequence

from embodied_r.perception.records import DescribedSample, FrameDescription
from embodied_r.vocabulary import ACTIONS

#: Scenes of the good batch and their (single) split.
SCENE_SPLITS = {"scene_a": "train", "scene_b": "train", "scene_c": "val", "scene_d": "test"}


def make_frames(n: int, actions: Sequence[str | None] | None = None, seed: int = 0) -> list[FrameDescription]:
    """``n`` well-formed frame descriptions; ``actions`` (for frames 1..n-1) defaults to cycling the vocabulary."""
    if actions is None:
        actions = [ACTIONS[(seed + k) % len(ACTIONS)] for k in range(n - 1)]
    frames = [
        FrameDescription(
            index=0,
            action=None,
            observation="A red brick building stands ahead-left; a white van is parked below to the right.",
            raw="A red brick building stands ahead-left; a white van is parked below to the right.",
        )
    ]
    for k, action in enumerate(actions, start=1):
        observation = f"Newly visible: a green tree {k} m ahead and a grey road turning to the left."
        frames.append(
            FrameDescription(
                index=k * 5,
                action=action,
                observation=observation,
                raw=f"1. {action}\n2. {observation}\n3. The building is still on the left.",
            )
        )
    return frames


def make_sample(
    question_id: str,
    scene_name: str = "scene_a",
    split: str | None = "train",
    *,
    n_frames: int = 6,
    frames: list[FrameDescription] | None = None,
    answer: str = "B",
    choices: Sequence[str] = ("A", "B", "C", "D"),
    seed: int = 0,
) -> DescribedSample:
    """One well-formed described sample; keyword arguments make it bad in one way."""
    frames = frames if frames is not None else make_frames(n_frames, seed=seed)
    return DescribedSample(
        question_id=question_id,
        video_id=f"{scene_name}_video",
        scene_name=scene_name,
        category="landmark_position",
        split=split,
        question="Question: Where is the red building?\nA. left\nB. right\nC. ahead\nD. behind",
        answer=answer,
        choices=list(choices),
        data_source="synthetic",
        keyframe_indices=[frame.index for frame in frames],
        frames=frames,
        mode="per_question",
        backend="fake",
        model="fake-vlm",
        prompt_version="v1",
    )


def good_batch(n_per_scene: int = 3) -> list[DescribedSample]:
    """A batch that passes every suite: 4 scenes, each in one split, ``n_per_scene`` questions each."""
    return [
        make_sample(f"q_{scene}_{i}", scene, split, n_frames=4 + (i % 5), seed=i)
        for scene, split in SCENE_SPLITS.items()
        for i in range(n_per_scene)
    ]
