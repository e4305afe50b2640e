"""Pure geometry of the synthetic world: camera frames, projection, bearings, relations.

Coordinate convention (world, metres, left-handed like Unity):

* ``x`` points right (east), ``y`` points up, ``z`` points forward (north) — the camera at ``yaw = 0``
  looks along ``+z``. The floor is the plane ``y = 0``; a room spans ``x ∈ [-W/2, W/2]``,
  ``z ∈ [-D/2, D/2]``, ``y ∈ [0, H]``.
* ``yaw`` (degrees) turns the camera about ``+y``; **positive yaw is a turn to the left** ("rotate left"
  increases yaw). The horizontal forward vector is ``(-sin yaw, 0, cos yaw)``, the right vector
  ``(cos yaw, 0, sin yaw)``.
* ``pitch`` (degrees) is positive when the camera looks up ("tilt upward" increases pitch).
* Camera coordinates follow OpenCV: ``x`` right, ``y`` down, ``z`` along the optical axis; pixels are
  ``u = cx + fx·x/z``, ``v = cy + fy·y/z``.
* An egocentric **bearing** is the horizontal angle from the camera's heading to a point, in degrees,
  in ``(-180, 180]``, **positive to the right** (so a point at bearing +90 is "to the right").

Everything here is a pure function of the ground-truth dictionary (see ``scene.py``) so the question
generator, the tests and a later ground-truth "oracle VLM" agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Near plane (metres): points closer than this along the optical axis are clipped / not visible.
NEAR = 0.05

#: Egocentric sector names, clockwise from straight ahead, each 45 degrees wide.
RELATIONS: tuple[str, ...] = (
    "ahead",
    "ahead-right",
    "to the right",
    "behind-right",
    "behind",
    "behind-left",
    "to the left",
    "ahead-left",
)


def forward_vector(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Unit viewing direction for a yaw and pitch (degrees)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([-math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])


def right_vector(yaw_deg: float) -> np.ndarray:
    """Unit horizontal right vector for a yaw (degrees)."""
    yaw = math.radians(yaw_deg)
    return np.array([math.cos(yaw), 0.0, math.sin(yaw)])


def camera_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """World → camera rotation (rows: camera x right, camera y down, camera z forward)."""
    f = forward_vector(yaw_deg, pitch_deg)
    r = right_vector(yaw_deg)
    up = np.cross(f, r)  # left-handed world: forward × right = up
    return np.stack([r, -up, f])


def intrinsics_matrix(intr: dict[str, float]) -> np.ndarray:
    """3×3 pinhole matrix from ``{"fx", "fy", "cx", "cy"}``."""
    return np.array([[intr["fx"], 0.0, intr["cx"]], [0.0, intr["fy"], intr["cy"]], [0.0, 0.0, 1.0]])


def to_camera(points: np.ndarray, position: np.ndarray, yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """World points (N×3) → camera coordinates (N×3)."""
    return (np.asarray(points, dtype=float) - np.asarray(position, dtype=float)) @ camera_rotation(yaw_deg, pitch_deg).T


def project(
    point: np.ndarray, position: np.ndarray, yaw_deg: float, pitch_deg: float, intr: dict[str, float]
) -> tuple[float, float, float]:
    """Project one world point: ``(u, v, depth)``; depth ≤ NEAR means behind / too close (u, v then meaningless)."""
    cam = to_camera(np.asarray(point, dtype=float)[None], position, yaw_deg, pitch_deg)[0]
    if cam[2] <= NEAR:
        return math.nan, math.nan, float(cam[2])
    return intr["cx"] + intr["fx"] * cam[0] / cam[2], intr["cy"] + intr["fy"] * cam[1] / cam[2], float(cam[2])


def bearing(position: np.ndarray, yaw_deg: float, target: np.ndarray) -> float:
    """Horizontal angle (degrees, positive to the right, in (-180, 180]) from the heading to ``target``.

    >>> round(bearing([0, 0, 0], 0.0, [1, 0, 1]), 1)  # ahead and to the right at yaw 0
    45.0
    """
    d = np.asarray(target, dtype=float) - np.asarray(position, dtype=float)
    f = forward_vector(yaw_deg)
    r = right_vector(yaw_deg)
    ang = math.degrees(math.atan2(float(d @ r), float(d @ f)))
    return 180.0 if ang <= -180.0 else ang


def heading_bearing(origin: np.ndarray, facing: np.ndarray, target: np.ndarray) -> float:
    """Bearing of ``target`` for someone at ``origin`` facing ``facing`` (floor plane, positive right)."""
    d = np.asarray(facing, dtype=float) - np.asarray(origin, dtype=float)
    yaw = yaw_towards(d)
    return bearing(origin, yaw, target)


def yaw_towards(direction: np.ndarray) -> float:
    """The yaw (degrees) whose horizontal forward vector points along ``direction`` (x, y, z)."""
    d = np.asarray(direction, dtype=float)
    return math.degrees(math.atan2(-d[0], d[2]))


def horizontal_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two points in the floor plane (x, z)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return math.hypot(a[0] - b[0], a[2] - b[2])


def box_gap(center_a, size_a, center_b, size_b) -> float:
    """Euclidean distance between the closest points of two axis-aligned boxes (0 when they touch)."""
    ca, sa, cb, sb = (np.asarray(v, dtype=float) for v in (center_a, size_a, center_b, size_b))
    gap = np.maximum(0.0, np.abs(ca - cb) - (sa + sb) / 2.0)
    return float(np.linalg.norm(gap))


def point_footprint_distance(point, center, size) -> float:
    """Floor-plane distance from a point to the footprint (x-z rectangle) of a box."""
    p, c, s = (np.asarray(v, dtype=float) for v in (point, center, size))
    dx = max(0.0, abs(p[0] - c[0]) - s[0] / 2.0)
    dz = max(0.0, abs(p[2] - c[2]) - s[2] / 2.0)
    return math.hypot(dx, dz)


def egocentric_relation(bearing_deg: float) -> str:
    """Name an egocentric bearing with one of eight 45-degree sectors.

    >>> egocentric_relation(0.0), egocentric_relation(-90.0), egocentric_relation(150.0)
    ('ahead', 'to the left', 'behind-right')
    """
    sector = math.floor(((bearing_deg + 22.5) % 360.0) / 45.0) % 8
    return RELATIONS[sector]


def relation_margin(bearing_deg: float) -> float:
    """Degrees from ``bearing_deg`` to the nearest sector boundary of :func:`egocentric_relation`."""
    x = (bearing_deg + 22.5) % 45.0
    return min(x, 45.0 - x)


def angle_margin(bearing_deg: float, boundaries: tuple[float, ...]) -> float:
    """Smallest angular distance (degrees) from a bearing to any of ``boundaries``."""
    return min(abs((bearing_deg - b + 180.0) % 360.0 - 180.0) for b in boundaries)


def pose_at(gt: dict[str, Any], frame_index: int) -> tuple[np.ndarray, float, float]:
    """Camera ``(position, yaw, pitch)`` at a frame of a ground-truth record."""
    pose = gt["poses"][frame_index]
    return np.asarray(pose["position"], dtype=float), float(pose["yaw"]), float(pose["pitch"])


@dataclass(frozen=True)
class VisibleObject:
    """One object as seen from a camera pose.

    ``bearing`` is degrees (positive right), ``distance`` the floor-plane distance to the box centre,
    ``in_image`` whether the box centre projects inside the image in front of the camera
    (occlusion is not modelled), ``pixel`` that projection (``None`` when behind the camera).
    """

    name: str
    category: str
    color: str
    bearing: float
    distance: float
    relation: str
    in_image: bool
    pixel: tuple[float, float] | None


def object_in_image(obj: dict[str, Any], position, yaw: float, pitch: float, gt: dict[str, Any]) -> bool:
    """Whether the object's box centre projects inside the image, in front of the camera."""
    u, v, depth = project(obj["center"], position, yaw, pitch, gt["intrinsics"])
    return depth > NEAR and 0.0 <= u < gt["width"] and 0.0 <= v < gt["height"]


def visible_objects(gt: dict[str, Any], frame_index: int, *, only_in_image: bool = False) -> list[VisibleObject]:
    """Every object of the scene described egocentrically from the camera pose at ``frame_index``.

    Returns objects in the ground truth's order; pass ``only_in_image=True`` to keep those in view.
    """
    position, yaw, pitch = pose_at(gt, frame_index)
    out = []
    for obj in gt["objects"]:
        u, v, depth = project(obj["center"], position, yaw, pitch, gt["intrinsics"])
        in_image = depth > NEAR and 0.0 <= u < gt["width"] and 0.0 <= v < gt["height"]
        if only_in_image and not in_image:
            continue
        b = bearing(position, yaw, obj["center"])
        out.append(
            VisibleObject(
                name=obj["name"],
                category=obj["category"],
                color=obj["color"],
                bearing=b,
                distance=horizontal_distance(position, obj["center"]),
                relation=egocentric_relation(b),
                in_image=in_image,
                pixel=None if depth <= NEAR else (u, v),
            )
        )
    return out


def visibility_matrix(gt: dict[str, Any]) -> np.ndarray:
    """Boolean array (frames × objects): object centre in the image at that frame."""
    vis = np.zeros((len(gt["poses"]), len(gt["objects"])), dtype=bool)
    for i in range(len(gt["poses"])):
        position, yaw, pitch = pose_at(gt, i)
        for j, obj in enumerate(gt["objects"]):
            vis[i, j] = object_in_image(obj, position, yaw, pitch, gt)
    return vis
