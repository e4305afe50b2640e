"""A ground-truth "VLM" for the embedded synthetic world: descriptions written from the scene's geometry.

Answers have the shape a VLM's have, so parsing and the LM text are exercised as with a real VLM:

* key frame 0: the objects in view from the key frame's pose, each as "a red chair (box-shaped) ahead-left,
  about 2.3 m away" (relation from :func:`~embodied_r.data.synthetic.geometry.egocentric_relation`), then the
  objects named in the question(s) that are in view;
* key frame k > 0: ``1. <action>`` — the dominant pose change between key frames k−1 and k in the camera frame
  of k−1 (yaw → rotate, pitch → tilt, forward/right/up translation → move), each component divided by the
  size of one action step so they compare; ``2.`` objects newly in view compared with k−1; ``3.`` the question
  objects in view.

Noise imitates VLM errors: each mentioned object is left out with ``miss_object_prob`` and gets a wrong colour
with ``wrong_color_prob``; point 1 names a wrong action with ``wrong_action_prob``. The noise is drawn from a
generator seeded by (noise_seed, video, key frame, questions), so a rerun writes the same text; all
probabilities 0 gives perfect perception.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from embodied_r.data.synthetic import geometry
from embodied_r.perception.backends.base import DescribeRequest, PerceptionError, VisionLanguageModel, VLMAnswer
from embodied_r.perception.config import PerceptionConfig
from embodied_r.vocabulary import ACTIONS

#: Size of one action step (mirrors embodied_r.data.synthetic.trajectory) — scales pose changes to compare them.
ROTATE_STEP, TILT_STEP, MOVE_STEP, VERTICAL_STEP = 30.0, 15.0, 0.5, 0.25
#: Below this fraction of a step in every component, the pose did not change visibly.
STILL = 0.05
#: Colours used for wrong-colour noise (the synthetic palette).
NOISE_COLORS = (
    "red", "green", "blue", "yellow", "orange", "purple", "white", "black", "brown", "pink", "cyan", "gray",
)  # fmt: skip


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def pose_change_action(gt: dict[str, Any], a: int, b: int) -> str:
    """The dominant one of the ten actions taking the camera from frame ``a`` to frame ``b``.

    Components in the camera frame at ``a``, each divided by one action step: yaw (left +), pitch (up +),
    forward, right and up translation. No visible change → the ground-truth action covering most of [a, b].
    """
    pa, yaw_a, pitch_a = geometry.pose_at(gt, a)
    pb, yaw_b, pitch_b = geometry.pose_at(gt, b)
    d = pb - pa
    forward = float(d @ geometry.forward_vector(yaw_a))
    right = float(d @ geometry.right_vector(yaw_a))
    scores = {
        ("rotate left", "rotate right"): _wrap(yaw_b - yaw_a) / ROTATE_STEP,
        ("tilt upward", "tilt downward"): (pitch_b - pitch_a) / TILT_STEP,
        ("move forward", "move backward"): forward / MOVE_STEP,
        ("move right", "move left"): right / MOVE_STEP,
        ("move upward", "move downward"): float(d[1]) / VERTICAL_STEP,
    }
    (positive, negative), value = max(scores.items(), key=lambda kv: abs(kv[1]))
    if abs(value) >= STILL:
        return positive if value > 0 else negative
    overlaps = [(min(b, s["end_frame"]) - max(a, s["start_frame"]), s["action"]) for s in gt.get("actions", [])]
    overlaps = [o for o in overlaps if o[0] > 0]
    return max(overlaps)[1] if overlaps else "move forward"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class OracleBackend(VisionLanguageModel):
    """Writes each key frame's description from the ground truth (``request.ground_truth``)."""

    name = "oracle"

    def __init__(self, cfg: PerceptionConfig) -> None:
        self.cfg = cfg
        self._gt: dict[Path, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _ground_truth(self, path: Path | None) -> dict[str, Any]:
        if path is None:
            raise PerceptionError("the oracle backend needs the video's ground truth, but none was given")
        with self._lock:
            if path not in self._gt:
                try:
                    self._gt[path] = json.loads(Path(path).read_text(encoding="utf-8"))
                except FileNotFoundError:
                    raise PerceptionError(f"no ground truth for the oracle at {path}") from None
            return self._gt[path]

    def _rng(self, request: DescribeRequest) -> np.random.Generator:
        payload = json.dumps(
            [self.cfg.noise_seed, request.video_id, list(request.frame_indices), sorted(request.questions)]
        )
        return np.random.default_rng(int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big"))

    def _mention(self, obj: geometry.VisibleObject, shape: str, rng: np.random.Generator) -> str:
        color = obj.color
        if rng.random() < self.cfg.wrong_color_prob:
            color = str(rng.choice([c for c in NOISE_COLORS if c != obj.color]))
        return (
            f"{_article(color)} {color} {obj.category} ({shape}-shaped) {obj.relation}, about {obj.distance:.1f} m away"
        )

    def _kept(self, objects: list[geometry.VisibleObject], rng: np.random.Generator) -> list[geometry.VisibleObject]:
        draws = rng.random(len(objects))  # one draw per object, so the noise does not depend on list order elsewhere
        return [o for o, u in zip(objects, draws, strict=True) if u >= self.cfg.miss_object_prob]

    def describe(self, request: DescribeRequest) -> VLMAnswer:
        """The three-point answer (k > 0) or the scene description (k = 0) from the ground truth."""
        gt = self._ground_truth(request.ground_truth)
        rng = self._rng(request)
        shapes = {o["name"]: o["shape"] for o in gt["objects"]}
        named = self._named_objects(gt, request.questions)
        current = request.frame_indices[-1]
        in_view = self._kept(geometry.visible_objects(gt, current, only_in_image=True), rng)
        asked = [o for o in in_view if o.name in named]
        if request.k == 0:
            seen = "; ".join(self._mention(o, shapes[o.name], rng) for o in in_view)
            scene = f"I see {seen}." if seen else "I see no distinct objects, only the walls and floor of a room."
            text = f"I am standing in a room. {scene} {self._asked_text(asked, shapes, rng)}"
            return VLMAnswer(text=text)
        before = request.frame_indices[0]
        action = pose_change_action(gt, before, current)
        if rng.random() < self.cfg.wrong_action_prob:
            action = str(rng.choice([a for a in ACTIONS if a != action]))
        was_visible = {o.name for o in geometry.visible_objects(gt, before, only_in_image=True)}
        new = [o for o in in_view if o.name not in was_visible]
        new_text = "; ".join(self._mention(o, shapes[o.name], rng) for o in new)
        point2 = f"Newly visible: {new_text}." if new_text else "No new objects came into view."
        text = f"1. {action[0].upper()}{action[1:]}\n2. {point2}\n3. {self._asked_text(asked, shapes, rng)}"
        return VLMAnswer(text=text)

    def _asked_text(self, asked: list[geometry.VisibleObject], shapes: dict[str, str], rng: np.random.Generator) -> str:
        if not asked:
            return "None of the objects named in the question are visible."
        return "Objects named in the question: " + "; ".join(self._mention(o, shapes[o.name], rng) for o in asked) + "."

    @staticmethod
    def _named_objects(gt: dict[str, Any], questions: tuple[str, ...]) -> set[str]:
        """Names of the scene's objects mentioned in the questions (by full name, e.g. "red chair")."""
        text = " ".join(questions).lower()
        return {o["name"] for o in gt["objects"] if re.search(rf"\b{re.escape(o['name'].lower())}\b", text)}


__all__ = ["OracleBackend", "pose_change_action"]
