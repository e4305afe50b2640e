"""Camera trajectories made of the paper's ten actions, and the per-video ground truth.

A trajectory starts at a free spot of the room at eye height, looking level, and takes
``steps_per_video`` actions from :data:`embodied_r.vocabulary.ACTIONS`. Moves are horizontal and relative to
the heading (``move forward`` goes along the horizontal forward vector whatever the pitch); ``move
upward/downward`` change the height; ``rotate left/right`` change the yaw (left = +yaw); ``tilt
upward/downward`` change the pitch (up = +pitch), bounded to ±30°. A move is only taken if the camera
keeps clear of walls and objects along the way, so the camera never passes through anything.

Each action is rendered over ``frames_per_step`` frames with smoothstep easing: frame 0 is the start
pose and action ``i`` runs from frame ``i·F`` (pose before) to frame ``(i+1)·F`` (pose after), so a
video has ``steps·F + 1`` frames.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from embodied_r.data.synthetic.geometry import forward_vector, point_footprint_distance, right_vector
from embodied_r.data.synthetic.scene import Scene, default_intrinsics
from embodied_r.vocabulary import ACTIONS

MOVE_STEP = 0.5  # metres per horizontal move
VERTICAL_STEP = 0.25  # metres per move upward / downward
ROTATE_STEP = 30.0  # degrees per rotate
TILT_STEP = 15.0  # degrees per tilt
HEIGHT_RANGE = (0.6, 2.4)
PITCH_LIMIT = 30.0
CLEARANCE = 0.45  # metres kept from object footprints
WALL_CLEARANCE = 0.7
LOOK_AHEAD = 1.5  # metres of free floor wanted ahead before preferring to walk forward

#: Relative preference of each action when building a random trajectory.
ACTION_WEIGHTS: dict[str, float] = {
    "move forward": 4.0,
    "move backward": 0.6,
    "move left": 0.8,
    "move right": 0.8,
    "move upward": 0.4,
    "move downward": 0.4,
    "rotate left": 2.6,
    "rotate right": 2.6,
    "tilt downward": 0.5,
    "tilt upward": 0.5,
}
assert set(ACTION_WEIGHTS) == set(ACTIONS)

#: Pairs of actions that undo each other; a trajectory does not immediately undo its last action.
OPPOSITE: dict[str, str] = {
    "move forward": "move backward",
    "move backward": "move forward",
    "move left": "move right",
    "move right": "move left",
    "move upward": "move downward",
    "move downward": "move upward",
    "rotate left": "rotate right",
    "rotate right": "rotate left",
    "tilt downward": "tilt upward",
    "tilt upward": "tilt downward",
}

Pose = tuple[float, float, float, float, float]  # x, y, z, yaw, pitch


def apply_action(pose: Pose, action: str) -> Pose:
    """The pose after one action (no collision check).

    >>> apply_action((0.0, 1.5, 0.0, 0.0, 0.0), "rotate left")[3]
    30.0
    """
    x, y, z, yaw, pitch = pose
    pos = np.array([x, y, z])
    if action == "move forward":
        pos = pos + MOVE_STEP * forward_vector(yaw)
    elif action == "move backward":
        pos = pos - MOVE_STEP * forward_vector(yaw)
    elif action == "move right":
        pos = pos + MOVE_STEP * right_vector(yaw)
    elif action == "move left":
        pos = pos - MOVE_STEP * right_vector(yaw)
    elif action == "move upward":
        pos = pos + np.array([0.0, VERTICAL_STEP, 0.0])
    elif action == "move downward":
        pos = pos - np.array([0.0, VERTICAL_STEP, 0.0])
    elif action == "rotate left":
        yaw += ROTATE_STEP
    elif action == "rotate right":
        yaw -= ROTATE_STEP
    elif action == "tilt upward":
        pitch += TILT_STEP
    elif action == "tilt downward":
        pitch -= TILT_STEP
    else:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
    return (float(pos[0]), float(pos[1]), float(pos[2]), yaw, pitch)


def is_free(scene: Scene, x: float, z: float, clearance: float = CLEARANCE) -> bool:
    """Whether a floor point keeps its distance from walls and every object footprint."""
    if abs(x) > scene.width / 2 - WALL_CLEARANCE or abs(z) > scene.depth / 2 - WALL_CLEARANCE:
        return False
    return all(point_footprint_distance((x, 0.0, z), o.center, o.size) >= clearance for o in scene.objects)


def action_allowed(scene: Scene, pose: Pose, new: Pose) -> bool:
    """Whether the move from ``pose`` to ``new`` stays inside bounds and clear of obstacles."""
    if not HEIGHT_RANGE[0] - 1e-9 <= new[1] <= HEIGHT_RANGE[1] + 1e-9:
        return False
    if abs(new[4]) > PITCH_LIMIT + 1e-9:
        return False
    return all(is_free(scene, pose[0] + t * (new[0] - pose[0]), pose[2] + t * (new[2] - pose[2])) for t in (0.5, 1.0))


def random_start(scene: Scene, rng: np.random.Generator) -> Pose:
    """A free starting pose at eye height, level, heading roughly towards a random object."""
    for _ in range(2000):
        # Start away from the walls so the first view shows the room, not a wall close-up.
        x = float(rng.uniform(-scene.width / 2 + 1.5, scene.width / 2 - 1.5))
        z = float(rng.uniform(-scene.depth / 2 + 1.5, scene.depth / 2 - 1.5))
        if is_free(scene, x, z, clearance=0.8):
            target = scene.objects[int(rng.integers(len(scene.objects)))].center
            yaw = math.degrees(math.atan2(-(target[0] - x), target[2] - z)) + float(rng.uniform(-25.0, 25.0))
            return (x, float(rng.uniform(1.3, 1.7)), z, yaw, 0.0)
    raise RuntimeError(f"no free start position in {scene.scene_name}")


def random_actions(scene: Scene, start: Pose, steps: int, rng: np.random.Generator) -> list[str]:
    """A sensible random action sequence: weighted choice among allowed actions, never undoing the last."""
    pose = start
    actions: list[str] = []
    for _ in range(steps):
        candidates = []
        for action in ACTIONS:
            if actions and OPPOSITE[action] == actions[-1]:
                continue
            if action_allowed(scene, pose, apply_action(pose, action)):
                candidates.append(action)
        weights = np.array([ACTION_WEIGHTS[a] for a in candidates])
        ahead = np.array(pose[:3]) + LOOK_AHEAD * forward_vector(pose[3])
        if "move forward" in candidates and not is_free(scene, float(ahead[0]), float(ahead[2])):
            weights[candidates.index("move forward")] *= 0.15
        # Level the camera again after a tilt more often than tilting further.
        if pose[4] != 0.0:
            for i, a in enumerate(candidates):
                if (a == "tilt upward") == (pose[4] < 0) and a.startswith("tilt"):
                    weights[i] *= 4.0
        # Keep turning the same way once started, so the camera sweeps the room instead of dithering.
        if actions and actions[-1].startswith("rotate") and actions[-1] in candidates:
            weights[candidates.index(actions[-1])] *= 1.5
        action = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        actions.append(action)
        pose = apply_action(pose, action)
    return actions


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def interpolate_poses(start: Pose, actions: list[str], frames_per_step: int) -> list[Pose]:
    """Per-frame poses (``len(actions)·frames_per_step + 1``), smoothstep-eased within each action."""
    poses = [start]
    pose = start
    for action in actions:
        new = apply_action(pose, action)
        for k in range(1, frames_per_step + 1):
            t = k / frames_per_step
            s = t * t * (3.0 - 2.0 * t)
            poses.append(tuple(a + s * (b - a) for a, b in zip(pose, new, strict=True)))  # type: ignore[arg-type]
        pose = new
    return poses


def build_ground_truth(
    scene: Scene,
    video_id: str,
    *,
    width: int,
    height: int,
    fps: float,
    steps: int,
    frames_per_step: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The ground truth of one video: intrinsics, room, objects, per-frame poses and actions.

    All floats are rounded to 4 decimals so the JSON bytes are stable; the renderer and the
    question generator both read this dictionary, never the unrounded values.
    """
    start = random_start(scene, rng)
    actions = random_actions(scene, start, steps, rng)
    poses = interpolate_poses(start, actions, frames_per_step)
    return {
        "video_id": video_id,
        "scene_name": scene.scene_name,
        "fps": fps,
        "num_frames": len(poses),
        "width": width,
        "height": height,
        "intrinsics": default_intrinsics(width, height),
        "room": scene.room_json(),
        "texture_seed": scene.texture_seed,
        "objects": [o.to_json() for o in scene.objects],
        "poses": [
            {
                "frame": i,
                "position": [round(p[0], 4), round(p[1], 4), round(p[2], 4)],
                "yaw": round(_wrap(p[3]), 4),
                "pitch": round(p[4], 4),
            }
            for i, p in enumerate(poses)
        ],
        "actions": [
            {"step": i, "action": a, "start_frame": i * frames_per_step, "end_frame": (i + 1) * frames_per_step}
            for i, a in enumerate(actions)
        ],
        "convention": (
            "metres; x right, y up, z forward at yaw 0; yaw degrees, positive = rotate left; "
            "pitch degrees, positive = tilt up; action i spans frames [start_frame, end_frame]"
        ),
    }


def yaw_difference(a: float, b: float) -> float:
    """Signed smallest difference ``b - a`` in degrees."""
    return _wrap(b - a)
