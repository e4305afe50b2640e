"""Rendering: videos decode with decord, are byte-deterministic, and have texture for ORB."""

from __future__ import annotations

import json

import cv2
import decord
import numpy as np

from embodied_r.config import SyntheticConfig
from embodied_r.data.synthetic import build_ground_truths, generate_embedded_dataset
from embodied_r.data.synthetic.render import FrameRenderer

TINY = SyntheticConfig(seed=1, scenes=2, videos_per_scene=2, width=64, height=48, steps_per_video=4, frames_per_step=3)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_decodes_and_is_deterministic(tmp_path):
    a = generate_embedded_dataset(TINY, tmp_path / "a", workers=1, progress=False)
    b = generate_embedded_dataset(TINY, tmp_path / "b", workers=2, progress=False)
    assert a.model_dump() == b.model_dump()
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert set(a.videos) == {"scene_000_v0", "scene_000_v1", "scene_001_v0", "scene_001_v1"}
    for video_id, rel in a.videos.items():
        assert rel == f"videos/{video_id}.mp4"
        vr = decord.VideoReader(str(tmp_path / "a" / rel))
        assert len(vr) == 4 * 3 + 1
        assert vr[0].shape == (48, 64, 3)
        gt = json.loads((tmp_path / "a" / "ground_truth" / f"{video_id}.json").read_text())
        assert gt["num_frames"] == len(vr) == len(gt["poses"])
        assert [x["end_frame"] for x in gt["actions"]] == [3, 6, 9, 12]


def test_orb_finds_features():
    gt = build_ground_truths(SyntheticConfig(seed=0, scenes=1, videos_per_scene=1, steps_per_video=4))[0]
    renderer = FrameRenderer(gt)
    orb = cv2.ORB_create(500)
    counts = [len(orb.detect(cv2.cvtColor(renderer.render(i), cv2.COLOR_RGB2GRAY), None)) for i in (0, 16, 32)]
    assert max(counts) > 50 and np.median(counts) > 50, counts
