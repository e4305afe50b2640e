"""Procedural scenes: a textured room with named, coloured objects, and the per-video ground truth.

A scene is a box-shaped room (``x ∈ [-W/2, W/2]``, ``z ∈ [-D/2, D/2]``, ``y ∈ [0, H]``; see
``geometry.py`` for the convention) whose floor, walls and ceiling carry seeded procedural textures,
and 6-10 objects standing on the floor. Each object has a unique name ("red chair") made of its colour
and category, a shape (box, cylinder, cone, sphere) and an axis-aligned 3-D box (centre, size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: category → (shape, (min size x, y, z), (max size x, y, z)) in metres.
OBJECT_CATEGORIES: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "chair": ("box", (0.45, 0.8, 0.45), (0.6, 1.0, 0.6)),
    "table": ("box", (1.0, 0.7, 0.7), (1.6, 0.8, 1.0)),
    "sofa": ("box", (1.6, 0.75, 0.8), (2.2, 0.9, 0.95)),
    "shelf": ("box", (0.8, 1.6, 0.35), (1.2, 2.0, 0.45)),
    "cabinet": ("box", (0.7, 1.0, 0.45), (1.0, 1.4, 0.6)),
    "crate": ("box", (0.5, 0.5, 0.5), (0.8, 0.8, 0.8)),
    "lamp": ("cylinder", (0.25, 1.4, 0.25), (0.35, 1.8, 0.35)),
    "barrel": ("cylinder", (0.55, 0.8, 0.55), (0.7, 1.0, 0.7)),
    "trash can": ("cylinder", (0.35, 0.6, 0.35), (0.45, 0.8, 0.45)),
    "plant": ("cone", (0.5, 1.0, 0.5), (0.7, 1.4, 0.7)),
    "tree": ("cone", (0.9, 2.0, 0.9), (1.2, 2.4, 1.2)),
    "traffic cone": ("cone", (0.35, 0.6, 0.35), (0.45, 0.8, 0.45)),
    "ball": ("sphere", (0.45, 0.45, 0.45), (0.6, 0.6, 0.6)),
    "globe": ("sphere", (0.7, 0.7, 0.7), (0.9, 0.9, 0.9)),
}

#: colour name → RGB.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 210),
    "yellow": (235, 215, 40),
    "orange": (240, 130, 30),
    "purple": (140, 50, 170),
    "white": (240, 240, 240),
    "black": (30, 30, 30),
    "brown": (120, 75, 40),
    "pink": (240, 130, 190),
    "cyan": (40, 200, 210),
    "gray": (128, 128, 128),
}

ROOM_HEIGHT = 3.0
#: Gap kept between object footprints so the camera can walk between them.
OBJECT_GAP = 0.9


@dataclass(frozen=True)
class SceneObject:
    """A named object with an axis-aligned 3-D box."""

    name: str
    category: str
    shape: str
    color: str
    rgb: tuple[int, int, int]
    center: tuple[float, float, float]
    size: tuple[float, float, float]

    def to_json(self) -> dict[str, Any]:
        """The object as stored in the ground truth (floats rounded to 4 decimals)."""
        return {
            "name": self.name,
            "category": self.category,
            "shape": self.shape,
            "color": self.color,
            "rgb": list(self.rgb),
            "center": [round(v, 4) for v in self.center],
            "size": [round(v, 4) for v in self.size],
        }


@dataclass(frozen=True)
class Scene:
    """A room with objects; ``texture_seed`` drives the renderer's procedural textures."""

    scene_name: str
    width: float
    depth: float
    height: float
    objects: tuple[SceneObject, ...]
    texture_seed: int

    def room_json(self) -> dict[str, float]:
        """Room extents as stored in the ground truth."""
        return {"width": round(self.width, 4), "depth": round(self.depth, 4), "height": round(self.height, 4)}


def _footprints_clear(center: np.ndarray, size: np.ndarray, placed: list[SceneObject]) -> bool:
    for other in placed:
        dx = abs(center[0] - other.center[0]) - (size[0] + other.size[0]) / 2
        dz = abs(center[2] - other.center[2]) - (size[2] + other.size[2]) / 2
        if max(dx, dz) < OBJECT_GAP:
            return False
    return True


def make_scene(scene_name: str, rng: np.random.Generator, n_objects: int) -> Scene:
    """Build a room of random size with ``n_objects`` non-overlapping, uniquely named objects.

    Objects are placed by rejection sampling; if the room fills up, fewer objects are kept (at least 2
    are needed, and the room is enlarged until they fit).
    """
    width = float(rng.uniform(8.0, 11.0))
    depth = float(rng.uniform(8.0, 11.0))
    pairs = [(c, k) for c in COLORS for k in OBJECT_CATEGORIES]
    order = rng.permutation(len(pairs))
    # Prefer distinct categories first so names are varied, then allow repeated categories.
    chosen: list[tuple[str, str]] = []
    used_categories: set[str] = set()
    for idx in order:
        color, category = pairs[idx]
        if category not in used_categories and all(color != c for c, _ in chosen[-2:]):
            chosen.append((color, category))
            used_categories.add(category)
        if len(chosen) == n_objects:
            break
    for idx in order:
        if len(chosen) >= n_objects:
            break
        if pairs[idx] not in chosen:
            chosen.append(pairs[idx])
    placed: list[SceneObject] = []
    for color, category in chosen:
        shape, lo, hi = OBJECT_CATEGORIES[category]
        size = np.array([rng.uniform(lo[i], hi[i]) for i in range(3)])
        if shape in ("cylinder", "cone"):
            size[2] = size[0]
        if shape == "sphere":
            size[:] = size[0]
        for _ in range(200):
            cx = rng.uniform(-width / 2 + size[0] / 2 + 0.1, width / 2 - size[0] / 2 - 0.1)
            cz = rng.uniform(-depth / 2 + size[2] / 2 + 0.1, depth / 2 - size[2] / 2 - 0.1)
            center = np.array([cx, size[1] / 2, cz])
            if _footprints_clear(center, size, placed):
                placed.append(
                    SceneObject(
                        name=f"{color} {category}",
                        category=category,
                        shape=shape,
                        color=color,
                        rgb=COLORS[color],
                        center=(float(center[0]), float(center[1]), float(center[2])),
                        size=(float(size[0]), float(size[1]), float(size[2])),
                    )
                )
                break
    return Scene(
        scene_name=scene_name,
        width=width,
        depth=depth,
        height=ROOM_HEIGHT,
        objects=tuple(placed),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def default_intrinsics(width: int, height: int, hfov_deg: float = 90.0) -> dict[str, float]:
    """Square-pixel pinhole intrinsics with the given horizontal field of view."""
    fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return {"fx": round(fx, 4), "fy": round(fx, 4), "cx": round(width / 2.0, 4), "cy": round(height / 2.0, 4)}
