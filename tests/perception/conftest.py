"""A tiny embedded world for the perception tests: ground truth, key-frame folders and questions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from embodied_r.config import SyntheticConfig
from embodied_r.data.records import QuestionRecord, compose_question
from embodied_r.data.synthetic import build_ground_truths

KEYFRAME_INDICES = [0, 4, 8, 12, 16, 20]  # every action's end pose (5 steps × 4 frames)


@dataclass
class World:
    root: Path
    keyframes_root: Path
    gt_root: Path
    videos: dict[str, dict[str, str]]
    records: list[QuestionRecord]
    gts: dict[str, dict[str, Any]]


def write_keyframes(folder: Path, indices: list[int], seed: int) -> None:
    """Key-frame JPEGs (noise, 48x36) and a manifest in the key-frame package's format."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for k, index in enumerate(indices):
        name = f"frame_{k:03d}_{index:06d}.jpg"
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
        entries.append({"k": k, "file": name, "index": index})
    (folder / "manifest.json").write_text(json.dumps({"count": len(entries), "keyframes": entries}))


def make_records(gt: dict[str, Any], n: int) -> list[QuestionRecord]:
    names = [o["name"] for o in gt["objects"]]
    records = []
    for i in range(n):
        a, b = names[i % len(names)], names[(i + 1) % len(names)]
        records.append(
            QuestionRecord(
                question_id=f"{gt['video_id']}-q{i}",
                video_id=gt["video_id"],
                category="object_rel_direction",
                question=compose_question(
                    f"Is the {a} to the left or the right of the {b}?", {"A": "left", "B": "right"}
                ),
                answer="A",
                scene_name=gt["scene_name"],
                data_source="embedded",
                choices={"A": "left", "B": "right"},
                split="train",
            )
        )
    return records


@pytest.fixture(scope="session")
def world_gts() -> list[dict[str, Any]]:
    cfg = SyntheticConfig(
        scenes=1,
        videos_per_scene=2,
        width=96,
        height=72,
        steps_per_video=5,
        frames_per_step=4,
        objects_per_scene=(4, 5),
    )
    return build_ground_truths(cfg)


@pytest.fixture
def world(tmp_path: Path, world_gts: list[dict[str, Any]]) -> World:
    kf_root, gt_root = tmp_path / "keyframes", tmp_path / "ground_truth"
    gt_root.mkdir()
    videos, records = {}, []
    for seed, gt in enumerate(world_gts):
        data = json.dumps(gt, sort_keys=True)
        (gt_root / f"{gt['video_id']}.json").write_text(data)
        videos[gt["video_id"]] = {"sha256": hashlib.sha256(data.encode()).hexdigest(), "path": f"{gt['video_id']}.mp4"}
        write_keyframes(kf_root / gt["video_id"], KEYFRAME_INDICES, seed)
        records += make_records(gt, 3)
    return World(tmp_path, kf_root, gt_root, videos, records, {g["video_id"]: g for g in world_gts})
