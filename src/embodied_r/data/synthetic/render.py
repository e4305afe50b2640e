"""A small software renderer for the synthetic room (numpy + OpenCV only).

* Floor, walls and ceiling are planes textured with seeded procedural images (tiles, bricks, panels plus
  noise, so ORB finds corners). Each plane is drawn by a homography warp of its texture
  (``cv2.warpPerspective`` with wrap-around tiling), masked to the plane's polygon clipped at the near
  plane. The camera is always inside the convex room, so the six planes never overlap on screen.
* Objects are convex meshes (box, 12-sided cylinder and cone) drawn face by face as filled, Lambert-shaded
  polygons with back-face culling, near-plane clipping and the painter's algorithm (far objects first);
  spheres are shaded discs.
* Videos are written with ``cv2.VideoWriter`` (fourcc ``mp4v``), which is byte-deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from embodied_r.data.synthetic.geometry import NEAR, camera_rotation, intrinsics_matrix, pose_at

TEXTURE_SIZE = 128
PIXELS_PER_METRE = 48.0
LIGHT = np.array([0.35, 0.85, -0.4]) / np.linalg.norm([0.35, 0.85, -0.4])
SUBPIXEL_SHIFT = 4
CYLINDER_SIDES = 12


@dataclass(frozen=True)
class Plane:
    """A textured rectangle: corner ``origin``, unit axes ``axis_u``/``axis_v``, extents in metres."""

    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    extent_u: float
    extent_v: float
    texture: np.ndarray

    def corners(self) -> np.ndarray:
        """The four world corners, in order around the rectangle."""
        o, u, v = self.origin, self.axis_u * self.extent_u, self.axis_v * self.extent_v
        return np.stack([o, o + u, o + u + v, o + v])


@dataclass(frozen=True)
class Mesh:
    """A convex object mesh: vertices (N×3), faces (vertex index lists), outward normals, face colours."""

    vertices: np.ndarray
    faces: tuple[tuple[int, ...], ...]
    normals: np.ndarray
    colors: tuple[tuple[int, int, int], ...]
    center: np.ndarray
    sphere_radius: float | None = None
    sphere_rgb: tuple[int, int, int] | None = None


def _tiles(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(90, 200, 3)
    alt = np.clip(base + rng.uniform(-70, 70, 3), 20, 235)
    tile = int(rng.choice([16, 32]))
    yy, xx = np.mgrid[0:size, 0:size]
    checker = ((yy // tile + xx // tile) % 2).astype(bool)
    img = np.where(checker[..., None], base, alt).astype(float)
    img[(yy % tile == 0) | (xx % tile == 0)] *= 0.45  # grout lines
    return img


def _bricks(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(80, 210, 3)
    img = np.empty((size, size, 3))
    bh, bw = 16, 32
    for row in range(size // bh):
        offset = (row % 2) * bw // 2
        for col in range(-1, size // bw + 1):
            x0 = col * bw + offset
            shade = base * rng.uniform(0.75, 1.2)
            img[row * bh : (row + 1) * bh, max(0, x0) : max(0, min(size, x0 + bw))] = shade
    yy, xx = np.mgrid[0:size, 0:size]
    mortar = (yy % bh == 0) | (((xx - ((yy // bh) % 2) * bw // 2) % bw) == 0)
    img[mortar] = base * 0.4
    return img


def _panels(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(170, 235, 3)
    img = np.tile(base, (size, size, 1)).astype(float)
    yy, xx = np.mgrid[0:size, 0:size]
    img[(yy % 64 < 2) | (xx % 64 < 2)] *= 0.55
    for _ in range(6):
        cx, cy, r = rng.integers(0, size), rng.integers(0, size), int(rng.integers(3, 9))
        cv2.circle(img, (int(cx), int(cy)), r, tuple(float(c) for c in base * 0.7), -1)
    return img


def make_textures(seed: int, size: int = TEXTURE_SIZE) -> dict[str, np.ndarray]:
    """Seeded RGB uint8 textures for ``floor``, ``ceiling`` and ``wall0..wall3``."""
    rng = np.random.default_rng(seed)
    textures = {"floor": _tiles(rng, size), "ceiling": _panels(rng, size)}
    wall_a, wall_b = _bricks(rng, size), _tiles(rng, size) * 0.9 + 20
    for i, (tex, light) in enumerate([(wall_a, 1.0), (wall_b, 0.85), (wall_a, 0.75), (wall_b, 0.95)]):
        textures[f"wall{i}"] = tex * light
    textures["floor"] *= 0.9
    out = {}
    for name, tex in textures.items():
        noisy = tex + rng.normal(0.0, 14.0, tex.shape)
        out[name] = np.clip(cv2.GaussianBlur(noisy, (3, 3), 0), 0, 255).astype(np.uint8)
    return out


def room_planes(room: dict[str, float], textures: dict[str, np.ndarray]) -> list[Plane]:
    """Floor, ceiling and four walls of a room centred on the origin."""
    w, d, h = room["width"], room["depth"], room["height"]
    x0, x1, z0, z1 = -w / 2, w / 2, -d / 2, d / 2
    ex, ey, ez = np.eye(3)
    return [
        Plane(np.array([x0, 0.0, z0]), ex, ez, w, d, textures["floor"]),
        Plane(np.array([x0, h, z0]), ex, ez, w, d, textures["ceiling"]),
        Plane(np.array([x0, h, z1]), ex, -ey, w, h, textures["wall0"]),  # far wall (+z)
        Plane(np.array([x1, h, z0]), ez, -ey, d, h, textures["wall1"]),  # right wall (+x)
        Plane(np.array([x0, h, z0]), ex, -ey, w, h, textures["wall2"]),  # near wall (-z)
        Plane(np.array([x0, h, z0]), ez, -ey, d, h, textures["wall3"]),  # left wall (-x)
    ]


def _shade(rgb: tuple[int, int, int], normal: np.ndarray) -> tuple[int, int, int]:
    k = 0.45 + 0.55 * max(0.0, float(normal @ LIGHT))
    return tuple(int(min(255, c * k)) for c in rgb)  # type: ignore[return-value]


def object_mesh(obj: dict[str, Any]) -> Mesh:
    """A convex mesh for an object of the ground truth (box, cylinder, cone or sphere)."""
    c = np.asarray(obj["center"], dtype=float)
    s = np.asarray(obj["size"], dtype=float)
    rgb = tuple(obj["rgb"])
    if obj["shape"] == "sphere":
        return Mesh(np.zeros((0, 3)), (), np.zeros((0, 3)), (), c, sphere_radius=s[0] / 2, sphere_rgb=rgb)
    if obj["shape"] == "box":
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
        verts = c + signs * s / 2
        faces = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))
        normals = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=float)
    else:
        n = CYLINDER_SIDES
        ang = np.arange(n) * 2 * math.pi / n
        ring = np.stack([np.cos(ang) * s[0] / 2, np.zeros(n), np.sin(ang) * s[2] / 2], axis=1)
        bottom = c + ring - np.array([0, s[1] / 2, 0])
        mid = np.stack([np.cos(ang + math.pi / n), np.zeros(n), np.sin(ang + math.pi / n)], axis=1)
        if obj["shape"] == "cylinder":
            top = bottom + np.array([0, s[1], 0])
            verts = np.concatenate([bottom, top])
            faces = tuple((i, (i + 1) % n, n + (i + 1) % n, n + i) for i in range(n))
            normals = mid
            faces += (tuple(range(n - 1, -1, -1)), tuple(range(n, 2 * n)))
            normals = np.concatenate([normals, [[0, -1, 0], [0, 1, 0]]])
        else:  # cone
            apex = c + np.array([0, s[1] / 2, 0])
            verts = np.concatenate([bottom, apex[None]])
            faces = tuple((i, (i + 1) % n, n) for i in range(n))
            slope = (s[0] / 2) / s[1]
            side = mid + np.array([0, slope, 0])
            normals = side / np.linalg.norm(side, axis=1, keepdims=True)
            faces += (tuple(range(n - 1, -1, -1)),)
            normals = np.concatenate([normals, [[0, -1, 0]]])
    colors = tuple(_shade(rgb, nrm) for nrm in normals)  # type: ignore[arg-type]
    return Mesh(verts, faces, normals, colors, c)


def clip_near(poly_cam: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Clip a convex polygon (camera coordinates, N×3) to ``z ≥ near`` (Sutherland–Hodgman, one plane)."""
    out = []
    n = len(poly_cam)
    for i in range(n):
        a, b = poly_cam[i], poly_cam[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)


def _to_pixels(poly_cam: np.ndarray, k: np.ndarray) -> np.ndarray:
    uv = (poly_cam @ k.T)[:, :2] / poly_cam[:, 2:3]
    uv = np.clip(uv, -1e5, 1e5)
    return np.round(uv * (1 << SUBPIXEL_SHIFT)).astype(np.int32)


class FrameRenderer:
    """Renders frames of one ground-truth video; textures and meshes are built once."""

    def __init__(self, gt: dict[str, Any]):
        self.gt = gt
        self.width, self.height = int(gt["width"]), int(gt["height"])
        self.k = intrinsics_matrix(gt["intrinsics"])
        self.planes = room_planes(gt["room"], make_textures(int(gt["texture_seed"])))
        self.meshes = [object_mesh(o) for o in gt["objects"]]
        self._mask = np.zeros((self.height, self.width), dtype=np.uint8)

    def render(self, frame_index: int) -> np.ndarray:
        """The RGB image (H×W×3 uint8) at a frame."""
        position, yaw, pitch = pose_at(self.gt, frame_index)
        rot = camera_rotation(yaw, pitch)
        img = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        for plane in self.planes:
            self._draw_plane(img, plane, position, rot)
        order = sorted(range(len(self.meshes)), key=lambda i: -float(np.linalg.norm(self.meshes[i].center - position)))
        for i in order:
            self._draw_mesh(img, self.meshes[i], position, rot)
        return img

    def _draw_plane(self, img: np.ndarray, plane: Plane, position: np.ndarray, rot: np.ndarray) -> None:
        poly = clip_near((plane.corners() - position) @ rot.T)
        if len(poly) < 3:
            return
        self._mask[:] = 0
        cv2.fillConvexPoly(self._mask, _to_pixels(poly, self.k), 255, shift=SUBPIXEL_SHIFT)
        scale = 1.0 / PIXELS_PER_METRE
        h = self.k @ rot @ np.stack([plane.axis_u * scale, plane.axis_v * scale, plane.origin - position], axis=1)
        warped = cv2.warpPerspective(
            plane.texture, h, (self.width, self.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
        )
        cv2.copyTo(warped, self._mask, img)

    def _draw_mesh(self, img: np.ndarray, mesh: Mesh, position: np.ndarray, rot: np.ndarray) -> None:
        if mesh.sphere_radius is not None:
            cam = rot @ (mesh.center - position)
            if cam[2] <= mesh.sphere_radius + NEAR:
                return
            uv = self.k @ cam / cam[2]
            r = self.k[0, 0] * mesh.sphere_radius / math.sqrt(max(cam[2] ** 2 - mesh.sphere_radius**2, 1e-6))
            ctr = (round(uv[0] * 16), round(uv[1] * 16))
            rad = round(min(r, 1e4) * 16)
            rgb = mesh.sphere_rgb or (128, 128, 128)
            cv2.circle(img, ctr, rad, tuple(int(c * 0.55) for c in rgb), -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
            hl = (ctr[0] - rad // 5, ctr[1] - rad // 4)
            cv2.circle(img, hl, int(rad * 0.72), tuple(int(c * 0.85) for c in rgb), -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.circle(img, hl, int(rad * 0.35), tuple(min(255, int(c * 1.1) + 20) for c in rgb), -1, cv2.LINE_AA, 4)
            return
        cam_verts = (mesh.vertices - position) @ rot.T
        for face, normal, color in zip(mesh.faces, mesh.normals, mesh.colors, strict=True):
            if float(normal @ (position - mesh.vertices[face[0]])) <= 0.0:
                continue  # back face
            poly = clip_near(cam_verts[list(face)])
            if len(poly) < 3:
                continue
            pts = _to_pixels(poly, self.k)
            cv2.fillConvexPoly(img, pts, color, cv2.LINE_AA, SUBPIXEL_SHIFT)
            edge = tuple(int(c * 0.5) for c in color)
            cv2.polylines(img, [pts], True, edge, 1, cv2.LINE_AA, SUBPIXEL_SHIFT)


def render_video(gt: dict[str, Any], path: Path) -> int:
    """Render every frame of a ground-truth video to an mp4 (``mp4v``); returns the frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    renderer = FrameRenderer(gt)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(gt["fps"]), (gt["width"], gt["height"]))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a video writer for {path}")
    try:
        for i in range(gt["num_frames"]):
            writer.write(cv2.cvtColor(renderer.render(i), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return int(gt["num_frames"])
