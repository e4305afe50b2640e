"""The oracle backend against the geometry of the embedded world."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from embodied_r.data.synthetic import geometry
from embodied_r.perception.backends import DescribeRequest
from embodied_r.perception.backends.oracle import OracleBackend, pose_change_action
from embodied_r.perception.config import PerceptionConfig
from embodied_r.perception.parse import parse_answer

PERFECT = PerceptionConfig(miss_object_prob=0.0, wrong_color_prob=0.0, wrong_action_prob=0.0)


def request(gt_path: Path, k: int, frames: tuple[int, ...], question: str = "Where is the door?") -> DescribeRequest:
    return DescribeRequest(
        prompt="p", images=(), video_id="v", k=k, frame_indices=frames, questions=(question,), ground_truth=gt_path
    )


def one_object_world(tmp_path: Path, bearing_deg: float) -> tuple[dict[str, Any], Path]:
    """Camera at the origin looking along +z (yaw 0); one red lamp 3 m away at ``bearing_deg`` (positive right)."""
    import json
    import math

    rad = math.radians(bearing_deg)
    center = [3 * math.sin(rad), 1.0, 3 * math.cos(rad)]
    gt = {
        "width": 640, "height": 480, "fps": 10.0,
        "intrinsics": {"fx": 100.0, "fy": 100.0, "cx": 320.0, "cy": 240.0},  # wide view: ±72° horizontally
        "objects": [{"name": "red lamp", "category": "lamp", "color": "red", "shape": "cylinder",
                     "center": center, "size": [0.3, 1.6, 0.3]}],
        "poses": [{"frame": i, "position": [0.0, 1.0, 0.0], "yaw": 10.0 * i, "pitch": 0.0} for i in range(4)],
        "actions": [],
    }  # fmt: skip
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return gt, path


def test_relation_matches_geometry_to_the_left(tmp_path: Path) -> None:
    gt, path = one_object_world(tmp_path, -60.0)
    seen = geometry.visible_objects(gt, 0, only_in_image=True)
    assert [o.relation for o in seen] == ["ahead-left"] == [geometry.egocentric_relation(-60.0)]
    text = OracleBackend(PERFECT).describe(request(path, 0, (0,), "Is the red lamp near?")).text
    assert "a red lamp (cylinder-shaped) ahead-left, about 3.0 m away" in text
    assert "Objects named in the question: a red lamp" in text


def test_pure_yaw_increase_is_rotate_left(tmp_path: Path) -> None:
    gt, path = one_object_world(tmp_path, 0.0)
    assert pose_change_action(gt, 0, 3) == "rotate left"
    parsed = parse_answer(OracleBackend(PERFECT).describe(request(path, 1, (0, 3))).text)
    assert parsed.action == "rotate left"


def test_pose_changes_map_to_each_action(tmp_path: Path) -> None:
    gt, _ = one_object_world(tmp_path, 0.0)
    cases = {
        "move forward": {"position": [0.0, 1.0, 0.5]},
        "move backward": {"position": [0.0, 1.0, -0.5]},
        "move right": {"position": [0.5, 1.0, 0.0]},
        "move left": {"position": [-0.5, 1.0, 0.0]},
        "move upward": {"position": [0.0, 1.25, 0.0]},
        "move downward": {"position": [0.0, 0.75, 0.0]},
        "rotate right": {"yaw": -30.0},
        "tilt upward": {"pitch": 15.0},
        "tilt downward": {"pitch": -15.0},
    }
    for action, change in cases.items():
        g = copy.deepcopy(gt)
        g["poses"][1] = {**g["poses"][0], **change}
        assert pose_change_action(g, 0, 1) == action


def test_real_ground_truth_actions(world) -> None:
    """Between consecutive action ends the oracle's action is the ground truth's (single actions)."""
    for gt in world.gts.values():
        for step in gt["actions"]:
            assert pose_change_action(gt, step["start_frame"], step["end_frame"]) == step["action"]


def test_noise_free_mentions_every_object_in_view(world) -> None:
    backend = OracleBackend(PERFECT)
    for video_id, gt in world.gts.items():
        path = world.gt_root / f"{video_id}.json"
        for frame in (0, 8, 20):
            text = backend.describe(request(path, 0, (frame,))).text
            seen = geometry.visible_objects(gt, frame, only_in_image=True)
            for obj in seen:
                assert f"{obj.color} {obj.category} (" in text and obj.relation in text
            assert len(re.findall(r"m away", text)) == len(seen)


def test_miss_probability_one_mentions_nothing(world) -> None:
    backend = OracleBackend(PerceptionConfig(miss_object_prob=1.0, wrong_color_prob=0.0, wrong_action_prob=0.0))
    video_id = next(iter(world.gts))
    text = backend.describe(request(world.gt_root / f"{video_id}.json", 0, (0,))).text
    assert "m away" not in text and "no distinct objects" in text


def test_noise_is_deterministic_and_wrong_action_changes_point_1(world) -> None:
    video_id, gt = next(iter(world.gts.items()))
    path = world.gt_root / f"{video_id}.json"
    noisy = PerceptionConfig(wrong_action_prob=1.0, wrong_color_prob=1.0, miss_object_prob=0.0)
    req = request(path, 1, (0, 4))
    first, again = OracleBackend(noisy).describe(req).text, OracleBackend(noisy).describe(req).text
    assert first == again
    assert parse_answer(first).action != gt["actions"][0]["action"]
    assert parse_answer(OracleBackend(PERFECT).describe(req).text).action == gt["actions"][0]["action"]
