"""Geometry conventions: bearings, relations, projection and the camera actions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embodied_r.data.synthetic.geometry import bearing, egocentric_relation, project, visible_objects
from embodied_r.data.synthetic.trajectory import apply_action

INTR = {"fx": 100.0, "fy": 100.0, "cx": 64.0, "cy": 48.0}


@pytest.mark.parametrize(
    ("target", "expected"),
    [((0, 0, 5), "ahead"), ((5, 0, 0), "to the right"), ((-5, 0, 0), "to the left"), ((0, 0, -5), "behind"),
     ((3, 0, 3), "ahead-right"), ((-3, 0, -3), "behind-left")],
)  # fmt: skip
def test_relation_at_yaw_zero(target, expected):
    assert egocentric_relation(bearing((0, 0, 0), 0.0, target)) == expected


def test_bearing_matches_plain_trig():
    rng = np.random.default_rng(0)
    for _ in range(200):
        pos, tgt, yaw = rng.uniform(-5, 5, 3), rng.uniform(-5, 5, 3), rng.uniform(-180, 180)
        # Heading at yaw is (-sin, cos) in (x, z); right is (cos, sin). Bearing positive to the right.
        h = (-math.sin(math.radians(yaw)), math.cos(math.radians(yaw)))
        d = (tgt[0] - pos[0], tgt[2] - pos[2])
        cross = h[1] * d[0] - h[0] * d[1]  # > 0 when d is clockwise (to the right) of h, seen from above
        dot = h[0] * d[0] + h[1] * d[1]
        assert bearing(pos, yaw, tgt) == pytest.approx(math.degrees(math.atan2(cross, dot)), abs=1e-6)


def test_projection_centre_and_sides():
    u, v, depth = project((0, 1.5, 4), np.array([0, 1.5, 0]), 0.0, 0.0, INTR)
    assert (u, v, depth) == pytest.approx((64.0, 48.0, 4.0))
    u, v, _ = project((1, 2.5, 4), np.array([0, 1.5, 0]), 0.0, 0.0, INTR)
    assert u > 64 and v < 48  # right and up in the world → right and up in the image
    assert math.isnan(project((0, 1.5, -4), np.array([0, 1.5, 0]), 0.0, 0.0, INTR)[0])


def test_actions_move_pose_as_named():
    pose = (0.0, 1.5, 0.0, 0.0, 0.0)
    assert apply_action(pose, "move forward")[2] > 0
    assert apply_action(pose, "move backward")[2] < 0
    assert apply_action(pose, "move right")[0] > 0
    assert apply_action(pose, "move left")[0] < 0
    assert apply_action(pose, "move upward")[1] > 1.5
    assert apply_action(pose, "move downward")[1] < 1.5
    assert apply_action(pose, "rotate left")[3] > 0
    assert apply_action(pose, "rotate right")[3] < 0
    assert apply_action(pose, "tilt upward")[4] > 0
    assert apply_action(pose, "tilt downward")[4] < 0
    # After rotating left, "forward" points to the world's left (-x).
    turned = apply_action(pose, "rotate left")
    assert apply_action(turned, "move forward")[0] < 0


def _gt_with_poses(poses):
    return {
        "width": 128,
        "height": 96,
        "intrinsics": INTR,
        "objects": [{"name": "red box", "category": "crate", "color": "red", "center": [0.0, 0.5, 5.0]}],
        "poses": [{"frame": i, "position": [0.0, 1.5, 0.0], "yaw": y, "pitch": p} for i, (y, p) in enumerate(poses)],
    }


def test_rotate_left_shifts_objects_right_and_tilt_up_shifts_down():
    pose = (0.0, 1.5, 0.0, 0.0, 0.0)
    left, up = apply_action(pose, "rotate left"), apply_action(pose, "tilt upward")
    gt = _gt_with_poses([(0.0, 0.0), (left[3], left[4]), (up[3], up[4])])
    before, after_rot, after_tilt = (visible_objects(gt, i)[0] for i in range(3))
    assert after_rot.pixel[0] > before.pixel[0]
    assert after_rot.bearing > before.bearing  # object is now to the right of the heading
    assert after_tilt.pixel[1] > before.pixel[1]
    assert before.in_image and before.relation == "ahead"
