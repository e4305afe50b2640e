"""Multiple-choice questions for the eight task categories, computed from the ground-truth geometry.

Every answer is computed from a video's ground truth (``scene.py``/``trajectory.py``) with the helpers
of ``geometry.py``; a candidate whose answer sits near a decision boundary is discarded (margins below),
so answers are unambiguous. Questions only mention objects seen in the video (box centre in the image in
at least one frame).

Definitions (bearings are positive to the right; see ``geometry.py``):

* ``object_rel_direction`` (VSI-Bench): standing at the X's centre facing the Y's centre, the Z's floor-plane
  bearing. Levels follow VSI-Bench: **easy** = left/right of the line of sight (2 choices, ≥15° from straight
  ahead/behind), **medium** = left/right/back, back meaning at least 135° away (3 choices, ≥10° from 0°, ±135°),
  **hard** = front-left/front-right/back-left/back-right quadrants (4 choices, ≥10° from the axes). Levels cycle.
* ``object_rel_distance``: which of four objects has the smallest closest-point (box-to-box) distance to X;
  the runner-up must be at least 0.3 m and 15 % farther.
* ``route_planning``: start at X facing Y, go forward to Y, [turn], forward to W, [turn], forward to Z; each
  turn is left/right when the heading changes by 30-120°, back when by ≥150° (otherwise discarded).
* ``obj_appearance_order``: order of first frames in which each of three objects is in the image; first
  appearances at least a quarter of an action apart.
* ``landmark_position``: eight-sector egocentric relation of X at the last frame (≥8° from a sector edge).
* ``counterfactual``: had the camera turned 90° left / 90° right / around at the first frame, which of four
  objects would be most directly ahead (smallest |bearing| ≤ 35°, the others at least 15° more).
* ``progress_evaluation`` (UrbanVideo-Bench style): the instruction lists the video's own actions as steps
  (consecutive identical actions merged, "rotate left twice") followed by 0-3 planned future steps; which
  step has just been completed at the end of the video (the last run). The choices are the texts of the last
  four listed steps (all different), so the answer sits at any of the four places. The planned steps are
  real runs of the dataset's videos obeying the trajectory rules (no repeat or undo of the previous step), so
  they read like the real ones; the number of planned steps is balanced per instruction length, so neither
  the place of a step nor the length of the instruction tells the answer. One question per video.
* ``action_generation``: from the last pose, the next action towards X: ``move forward`` (|bearing| ≤ 12°,
  ≥ 1 m away), ``rotate left`` / ``rotate right`` (25-150° to that side). Three choices, from ACTIONS. The
  three answers are kept within ``ACTION_SLACK`` of each other, so no choice text (or length) is favoured.

Blind-guessing resistance (checked by ``blind_baseline.py``): the correct letter is placed by a seeded,
per-category cycle of permutations (so letters are exactly balanced within a category); where several answer
labels are possible the least-used label of the category so far is preferred, which flattens answer-text
frequencies; where answers are object names, an answer text that has been the answer more often than its
share of the choices shown is avoided as an answer and preferred as a distractor (``Balancer.text_excess``);
an appearance-order question prefers an object set not asked before.

Count: slot ``k`` of video ``i`` asks category ``(i + k) mod C``; when it has no new unambiguous question for
that video, the slot falls back to the category with the fewest questions so far (see ``generate_questions``).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_r.data.records import QuestionRecord, compose_question
from embodied_r.data.synthetic.geometry import (
    RELATIONS,
    angle_margin,
    bearing,
    box_gap,
    egocentric_relation,
    heading_bearing,
    horizontal_distance,
    point_footprint_distance,
    pose_at,
    relation_margin,
    visibility_matrix,
)
from embodied_r.data.synthetic.trajectory import OPPOSITE
from embodied_r.vocabulary import LETTERS, REL_DIRECTION_LEVELS, TASK_CATEGORIES

logger = logging.getLogger(__name__)

DATA_SOURCE = "embedded"

NEXT_ACTIONS: tuple[str, ...] = ("move forward", "rotate left", "rotate right")
TURNS: tuple[str, ...] = ("turn left", "turn right", "turn back")
COUNTERFACTUAL_TURNS: dict[str, float] = {
    "turned 90 degrees to the left": 90.0,
    "turned 90 degrees to the right": -90.0,
    "turned around": 180.0,
}
PROGRESS_CHOICES = 4
#: An ``action_generation`` answer label may lead the least-used label of the category by at most this much.
ACTION_SLACK = 1


@dataclass
class Draft:
    """A question before letters are assigned. ``stem`` may contain ``{options}`` (choices in letter order)."""

    stem: str
    answer: str
    distractors: list[str]
    label: str
    level: str | None = None
    tally: tuple[tuple[Any, ...], ...] = ()  # further ``Balancer.label_usage`` keys counted once the question is kept
    key: Any = None  # what makes two questions of a video the same; default ``(stem, answer)``


@dataclass
class VideoContext:
    """What the generators need about one video."""

    gt: dict[str, Any]
    visibility: np.ndarray  # frames × objects
    seen: list[int]
    first_frame: dict[int, int]

    @classmethod
    def from_gt(cls, gt: dict[str, Any]) -> VideoContext:
        """Compute per-frame visibility and first appearances."""
        vis = visibility_matrix(gt)
        seen = [j for j in range(vis.shape[1]) if vis[:, j].any()]
        first = {j: int(np.argmax(vis[:, j])) for j in seen}
        return cls(gt, vis, seen, first)

    def obj(self, j: int) -> dict[str, Any]:
        """The j-th object of the ground truth."""
        return self.gt["objects"][j]

    def center(self, j: int) -> np.ndarray:
        """Centre of the j-th object."""
        return np.asarray(self.gt["objects"][j]["center"], dtype=float)

    def name(self, j: int) -> str:
        """Name of the j-th object."""
        return self.gt["objects"][j]["name"]


@dataclass
class Balancer:
    """Seeded bookkeeping that balances answer letters and answer labels across the dataset."""

    rng: np.random.Generator
    label_usage: Counter = field(default_factory=Counter)
    _letter_queues: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    level_counter: int = 0
    run_pool: list[tuple[str, int]] = field(default_factory=list)  # real action runs, for planned steps
    answer_texts: Counter = field(default_factory=Counter)
    choice_share: Counter = field(default_factory=Counter)

    def letter_index(self, category: str, n_choices: int) -> int:
        """Next correct-answer position for this category and choice count (cycles through permutations)."""
        queue = self._letter_queues.setdefault((category, n_choices), [])
        if not queue:
            queue.extend(int(i) for i in self.rng.permutation(n_choices))
        return queue.pop()

    def pick(
        self,
        category: str,
        candidates: Sequence[tuple[str, Any]],
        universe: Sequence[str] | None = None,
        slack: int = 0,
    ) -> tuple[str, Any] | None:
        """Among ``(label, payload)`` candidates, pick one of a least-used label (ties broken by the rng).

        With ``universe`` (all labels of the category), a label is only allowed while its usage is at most
        ``slack`` above the least-used label of the universe, so rarely possible labels cannot fall behind.
        """
        if universe is not None and candidates:
            floor = min(self.label_usage[(category, label)] for label in universe) + slack
            candidates = [c for c in candidates if self.label_usage[(category, c[0])] <= floor]
        if not candidates:
            return None
        labels = sorted({label for label, _ in candidates})
        least = min(self.label_usage[(category, label)] for label in labels)
        best = [label for label in labels if self.label_usage[(category, label)] == least]
        label = best[int(self.rng.integers(len(best)))]
        pool = [c for c in candidates if c[0] == label]
        return pool[int(self.rng.integers(len(pool)))]

    def text_excess(self, category: str, text: str) -> float:
        """How much more often ``text`` was the answer of the category than its share of the choices shown."""
        return self.answer_texts[(category, text)] - self.choice_share[(category, text)]

    def not_overused(self, category: str, candidates: Sequence[tuple[str, Any]]) -> tuple[str, Any] | None:
        """A random ``(answer text, payload)`` candidate whose answer text is not over-used (``text_excess`` ≤ 0),
        else one of the smallest excess, so no answer text becomes a frequent-answer shortcut."""
        if not candidates:
            return None
        excess = [self.text_excess(category, text) for text, _ in candidates]
        cap = max(0.0, min(excess))
        pool = [c for c, e in zip(candidates, excess, strict=True) if e <= cap]
        return pool[int(self.rng.integers(len(pool)))]

    def distractors(self, category: str, texts: Sequence[str], k: int) -> list[str]:
        """``k`` of ``texts``: over-used answer texts (``text_excess`` > 0) first, the rest at random, so a text
        that was often the answer is also often shown as a wrong choice."""
        order = [texts[int(i)] for i in self.rng.permutation(len(texts))]
        return sorted(order, key=lambda text: self.text_excess(category, text) <= 0)[:k]

    def shown(self, category: str, answer: str, choices: Sequence[str]) -> None:
        """Record the answer text and the choice texts of an emitted question."""
        self.answer_texts[(category, answer)] += 1
        for text in choices:
            self.choice_share[(category, text)] += 1.0 / len(choices)

    def used(self, category: str, label: str) -> None:
        """Record that a question with this answer label was emitted."""
        self.label_usage[(category, label)] += 1


Generator = Callable[[VideoContext, Balancer], Draft | None]


def _rel_direction(ctx: VideoContext, bal: Balancer) -> Draft | None:
    if len(ctx.seen) < 3:
        return None
    level = REL_DIRECTION_LEVELS[bal.level_counter % len(REL_DIRECTION_LEVELS)]
    candidates = []
    for x, y, z in itertools.permutations(ctx.seen, 3):
        cx, cy, cz = ctx.center(x), ctx.center(y), ctx.center(z)
        if horizontal_distance(cx, cy) < 1.0 or horizontal_distance(cx, cz) < 0.8:
            continue
        b = heading_bearing(cx, cy, cz)
        if level == "easy":
            if angle_margin(b, (0.0, 180.0)) < 15.0:
                continue
            label = "right" if b > 0 else "left"
        elif level == "medium":
            if angle_margin(b, (0.0, 135.0, -135.0)) < 10.0:
                continue
            label = "back" if abs(b) >= 135.0 else ("right" if b > 0 else "left")
        else:
            if angle_margin(b, (0.0, 90.0, -90.0, 180.0)) < 10.0:
                continue
            label = ("back-" if abs(b) > 90.0 else "front-") + ("right" if b > 0 else "left")
        candidates.append((label, (x, y, z)))
    chosen = bal.pick(f"object_rel_direction/{level}", candidates)
    if chosen is None:
        return None
    label, (x, y, z) = chosen
    bal.used(f"object_rel_direction/{level}", label)
    bal.level_counter += 1
    head = f"If I am standing by the {ctx.name(x)} and facing the {ctx.name(y)}, "
    if level == "easy":
        stem = head + f"is the {ctx.name(z)} to the left or the right of the {ctx.name(y)}?"
        options = ["left", "right"]
    elif level == "medium":
        stem = head + (
            f"is the {ctx.name(z)} to my left, right, or back? "
            "An object is to my back if I would have to turn at least 135 degrees in order to face it."
        )
        options = ["left", "right", "back"]
    else:
        stem = head + (
            f"is the {ctx.name(z)} to my front-left, front-right, back-left, or back-right? "
            "The directions refer to the quadrants of a Cartesian plane "
            "(if I am standing at the origin and facing along the positive y-axis)."
        )
        options = ["front-left", "front-right", "back-left", "back-right"]
    return Draft(stem, label, [o for o in options if o != label], label, level)


def _rel_distance(ctx: VideoContext, bal: Balancer) -> Draft | None:
    if len(ctx.seen) < 5:
        return None
    rng = bal.rng
    candidates = []
    for _ in range(60):
        pick = [int(i) for i in rng.choice(ctx.seen, size=5, replace=False)]
        target, others = pick[0], pick[1:]
        t = ctx.obj(target)
        gaps = sorted((box_gap(t["center"], t["size"], ctx.obj(o)["center"], ctx.obj(o)["size"]), o) for o in others)
        (g1, best), (g2, _) = gaps[0], gaps[1]
        if g2 - g1 >= max(0.3, 0.15 * g2):
            candidates.append((ctx.name(best), (target, best, others)))
    chosen = bal.not_overused("object_rel_distance", candidates)
    if chosen is None:
        return None
    answer, (target, best, others) = chosen
    stem = (
        "Measuring from the closest point of each object, which of these objects ({options}) "
        f"is the closest to the {ctx.name(target)}?"
    )
    return Draft(stem, answer, [ctx.name(o) for o in others if o != best], answer)


def _turn(b: float) -> str | None:
    a = abs(b)
    if a >= 150.0:
        return "turn back"
    if 30.0 <= a <= 120.0:
        return "turn right" if b > 0 else "turn left"
    return None


def _route(ctx: VideoContext, bal: Balancer) -> Draft | None:
    if len(ctx.seen) < 4:
        return None
    centers = {i: ctx.center(i) for i in ctx.seen}
    far = {(a, b) for a, b in itertools.permutations(ctx.seen, 2) if horizontal_distance(centers[a], centers[b]) >= 1.0}
    turns: dict[tuple[int, int, int], str | None] = {}  # turn at b when going a → b → c

    def turn(a: int, b: int, c: int) -> str | None:
        if (a, b, c) not in turns:
            ca, cb, cc = centers[a], centers[b], centers[c]
            turns[(a, b, c)] = _turn(heading_bearing(cb, cb + (cb - ca), cc))
        return turns[(a, b, c)]

    candidates = []
    for x, y, w, z in itertools.permutations(ctx.seen, 4):
        if (x, y) not in far or (y, w) not in far or (w, z) not in far:
            continue
        t1 = turn(x, y, w)
        t2 = turn(y, w, z) if t1 is not None else None
        if t1 is None or t2 is None:
            continue
        candidates.append((f"{t1}, {t2}", (x, y, w, z)))
    chosen = bal.pick("route_planning", candidates)
    if chosen is None:
        return None
    label, (x, y, w, z) = chosen
    all_labels = [f"{a}, {b}" for a in TURNS for b in TURNS if f"{a}, {b}" != label]
    distractors = [all_labels[i] for i in bal.rng.choice(len(all_labels), size=3, replace=False)]
    stem = (
        f"You are a robot beginning at the {ctx.name(x)} facing the {ctx.name(y)}. "
        f"You want to navigate to the {ctx.name(z)}. You will perform the following actions "
        "(Note: for each [please fill in], choose either 'turn back', 'turn left', or 'turn right'.): "
        f"1. Go forward until the {ctx.name(y)}. 2. [please fill in] 3. Go forward until the {ctx.name(w)}. "
        f"4. [please fill in] 5. Go forward until the {ctx.name(z)}. You have reached the final destination."
    )
    return Draft(stem, label, distractors, label)


def _appearance_order(ctx: VideoContext, bal: Balancer) -> Draft | None:
    if len(ctx.seen) < 3:
        return None
    gap = max(1, int(ctx.gt["num_frames"] - 1) // max(1, len(ctx.gt["actions"])) // 4)
    triples = [
        t
        for t in itertools.combinations(ctx.seen, 3)
        if min(abs(ctx.first_frame[a] - ctx.first_frame[b]) for a, b in itertools.combinations(t, 2)) >= gap
    ]
    if not triples:
        return None
    rng = bal.rng

    # Prefer object sets not asked before (a set asked again in another video of the scene often has the same
    # order, which a text-only model could memorise), then answer texts that are not over-used.
    def asked(t: tuple[int, ...]) -> int:
        return bal.label_usage[("obj_appearance_order", frozenset(ctx.name(j) for j in t))]

    fewest = min(asked(t) for t in triples)
    ordered = [sorted(t, key=lambda j: ctx.first_frame[j]) for t in triples if asked(t) == fewest]
    chosen = bal.not_overused("obj_appearance_order", [(", ".join(ctx.name(j) for j in o), o) for o in ordered])
    assert chosen is not None
    order = chosen[1]
    listed = [int(i) for i in rng.permutation(order)]
    label = "".join(str(listed.index(j)) for j in order)
    perms = [p for p in itertools.permutations(listed) if list(p) != order]
    distractors = bal.distractors("obj_appearance_order", [", ".join(ctx.name(j) for j in p) for p in perms], 3)
    stem = (
        "What will be the first-time appearance order of the following objects in the video: "
        f"{', '.join(ctx.name(j) for j in listed)}?"
    )
    names = frozenset(ctx.name(j) for j in order)
    tally = (("obj_appearance_order", names),)
    return Draft(stem, ", ".join(ctx.name(j) for j in order), distractors, label, tally=tally, key=names)


def _landmark(ctx: VideoContext, bal: Balancer) -> Draft | None:
    position, yaw, _ = pose_at(ctx.gt, ctx.gt["num_frames"] - 1)
    candidates = []
    for j in ctx.seen:
        b = bearing(position, yaw, ctx.center(j))
        if relation_margin(b) >= 8.0 and horizontal_distance(position, ctx.center(j)) >= 0.5:
            candidates.append((egocentric_relation(b), j))
    chosen = bal.pick("landmark_position", candidates)
    if chosen is None:
        return None
    label, j = chosen
    others = [r for r in RELATIONS if r != label]
    distractors = [others[i] for i in bal.rng.choice(len(others), size=3, replace=False)]
    stem = f"At the end of the video, where is the {ctx.name(j)} relative to you?"
    return Draft(stem, label, distractors, label)


def _counterfactual(ctx: VideoContext, bal: Balancer) -> Draft | None:
    if len(ctx.seen) < 4:
        return None
    position, yaw, _ = pose_at(ctx.gt, 0)
    candidates = []
    for phrase, delta in COUNTERFACTUAL_TURNS.items():
        bearings = {j: abs(bearing(position, yaw + delta, ctx.center(j))) for j in ctx.seen}
        best = min(bearings, key=bearings.__getitem__)
        far = [j for j in ctx.seen if bearings[j] >= bearings[best] + 15.0]
        if bearings[best] <= 35.0 and len(far) >= 3:
            candidates.append((phrase, (best, far)))
    if not candidates:
        return None
    least = min(bal.text_excess("counterfactual", ctx.name(best)) for _, (best, _) in candidates)
    chosen = bal.pick(
        "counterfactual", [c for c in candidates if bal.text_excess("counterfactual", ctx.name(c[1][0])) == least]
    )
    assert chosen is not None
    phrase, (best, far) = chosen
    distractors = bal.distractors("counterfactual", [ctx.name(j) for j in far], 3)
    first = ctx.gt["actions"][0]["action"] if ctx.gt["actions"] else "moving"
    stem = (
        f"If at the very start of the video you had {phrase} instead of your first action ({first}), "
        "which of these objects would have been most directly in front of you?"
    )
    return Draft(stem, ctx.name(best), distractors, phrase)


_TIMES = {1: "once", 2: "twice"}


def _run_text(action: str, count: int) -> str:
    return f"{action} {_TIMES.get(count, f'{count} times')}"


def action_runs(actions: Sequence[str]) -> list[tuple[str, int]]:
    """Consecutive identical actions merged: ``[(action, count), ...]``."""
    runs: list[tuple[str, int]] = []
    for action in actions:
        if runs and runs[-1][0] == action:
            runs[-1] = (action, runs[-1][1] + 1)
        else:
            runs.append((action, 1))
    return runs


def _future_steps(last: str, count: int, taken: set[str], bal: Balancer) -> list[tuple[str, int]] | None:
    """``count`` planned steps after the action ``last``, drawn from ``bal.run_pool`` (real runs) under the rules
    of real trajectories: a step never repeats or undoes the previous one, and its text is new to ``taken``.
    Texts that were the answer more often than their share of the choices are preferred, so that answer texts
    (the video's last run, often cut short by the end of the video) are shown as often as distractors."""
    steps: list[tuple[str, int]] = []
    for _ in range(count):
        allowed = [
            (a, c) for a, c in bal.run_pool if a != last and OPPOSITE.get(a) != last and _run_text(a, c) not in taken
        ]
        if not allowed:
            return None
        excess = [bal.text_excess("progress_evaluation", _run_text(a, c)) for a, c in allowed]
        if max(excess) > 0:
            allowed = [run for run, e in zip(allowed, excess, strict=True) if e > 0]
        a, c = allowed[int(bal.rng.integers(len(allowed)))]
        steps.append((a, c))
        taken.add(_run_text(a, c))
        last = a
    return steps


def _progress(ctx: VideoContext, bal: Balancer) -> Draft | None:
    runs = action_runs([a["action"] for a in ctx.gt["actions"]])
    texts = [_run_text(a, c) for a, c in runs]
    done = len(runs)
    candidates = []
    for extra in range(PROGRESS_CHOICES):
        total = done + extra
        shown = texts[total - PROGRESS_CHOICES :] if total >= PROGRESS_CHOICES else []
        if done < PROGRESS_CHOICES - extra or len(set(shown)) < len(shown):
            continue
        row = [bal.label_usage[("progress_evaluation", total, e)] for e in range(PROGRESS_CHOICES)]
        deficit = max(row) - row[extra]
        candidates.append((-deficit, bal.label_usage[("progress_evaluation", str(extra))], extra))
    if not candidates:
        return None
    best = min(c[:2] for c in candidates)
    ties = [c[2] for c in candidates if c[:2] == best]
    extra = ties[int(bal.rng.integers(len(ties)))]
    shown_real = texts[done - (PROGRESS_CHOICES - extra) :]
    future = _future_steps(runs[-1][0], extra, set(shown_real), bal)
    if future is None:
        return None
    steps = texts + [_run_text(a, c) for a, c in future]
    route = " ".join(f"{i}. {text.capitalize()}." for i, text in enumerate(steps, start=1))
    stem = (
        f"You were given this navigation instruction: {route} "
        "The video shows your movement so far. Which step of the instruction have you just completed?"
    )
    window = steps[-PROGRESS_CHOICES:]
    answer = texts[-1]
    tally = (("progress_evaluation", done + extra, extra),)
    distractors = [t for t in window if t != answer]
    return Draft(stem, answer, distractors, str(extra), tally=tally, key="progress")


def _action(ctx: VideoContext, bal: Balancer) -> Draft | None:
    position, yaw, _ = pose_at(ctx.gt, ctx.gt["num_frames"] - 1)
    candidates = []
    for j in ctx.seen:
        o = ctx.obj(j)
        b = bearing(position, yaw, o["center"])
        if abs(b) <= 12.0 and point_footprint_distance(position, o["center"], o["size"]) >= 1.0:
            candidates.append(("move forward", j))
        elif 25.0 <= abs(b) <= 150.0:
            candidates.append(("rotate right" if b > 0 else "rotate left", j))
    chosen = bal.pick("action_generation", candidates, NEXT_ACTIONS, ACTION_SLACK)
    if chosen is None:
        return None
    label, j = chosen
    stem = f"You want to reach the {ctx.name(j)}. What action should you take next?"
    return Draft(stem, label, [a for a in NEXT_ACTIONS if a != label], label)


GENERATORS: dict[str, Generator] = {
    "object_rel_direction": _rel_direction,
    "object_rel_distance": _rel_distance,
    "route_planning": _route,
    "obj_appearance_order": _appearance_order,
    "landmark_position": _landmark,
    "counterfactual": _counterfactual,
    "progress_evaluation": _progress,
    "action_generation": _action,
}
assert set(GENERATORS) == set(TASK_CATEGORIES)


def _finish(draft: Draft, category: str, ctx: VideoContext, question_id: str, bal: Balancer) -> QuestionRecord:
    n = len(draft.distractors) + 1
    position = bal.letter_index(category, n)
    order = [draft.distractors[i] for i in bal.rng.permutation(len(draft.distractors))]
    order.insert(position, draft.answer)
    choices = {LETTERS[i]: text for i, text in enumerate(order)}
    stem = draft.stem.replace("{options}", ", ".join(order))
    return QuestionRecord(
        question_id=question_id,
        video_id=ctx.gt["video_id"],
        category=category,
        question=compose_question(stem, choices),
        answer=LETTERS[position],
        scene_name=ctx.gt["scene_name"],
        data_source=DATA_SOURCE,
        choices=choices,
        level=draft.level,
    )


def generate_questions(
    gts: Sequence[dict[str, Any]], categories: Sequence[str], questions_per_video: int, seed: int
) -> list[QuestionRecord]:
    """Questions for a sequence of videos, in order; deterministic for a seed.

    Slot ``k`` of video ``i`` asks about category ``categories[(i + k) % len(categories)]``. When that category
    has no new unambiguous question for the video, the slot falls back to the other categories, fewest
    questions in this video first, then fewest in the dataset so far (then in cycle order), so the count stays
    close to ``len(gts) × questions_per_video`` and categories stay balanced. A slot for which no category
    works is skipped (logged at debug level).
    """
    bal = Balancer(np.random.default_rng([seed, 7919]))
    bal.run_pool = [run for gt in gts for run in action_runs([a["action"] for a in gt["actions"]])]
    records: list[QuestionRecord] = []
    totals: Counter = Counter()
    n_cat = len(categories)
    for i, gt in enumerate(gts):
        ctx = VideoContext.from_gt(gt)
        asked: set[tuple[str, Any]] = set()
        in_video: Counter = Counter()
        for k in range(questions_per_video):
            first = (i + k) % n_cat
            rest = sorted(
                (categories[(first + d) % n_cat] for d in range(1, n_cat)),
                key=lambda c, first=first: (totals[c], in_video[c], (categories.index(c) - first) % n_cat),
            )
            for category in [categories[first], *rest]:
                draft = GENERATORS[category](ctx, bal)
                if draft is not None:
                    key = (category, (draft.stem, draft.answer) if draft.key is None else draft.key)
                if draft is None or key in asked:
                    logger.debug("no new %s question for %s (slot %d)", category, gt["video_id"], k)
                    continue
                asked.add(key)
                if category != "object_rel_direction":
                    bal.used(category, draft.label)
                for key in draft.tally:
                    bal.label_usage[key] += 1
                bal.shown(category, draft.answer, [draft.answer, *draft.distractors])
                in_video[category] += 1
                totals[category] += 1
                records.append(_finish(draft, category, ctx, f"{gt['video_id']}-q{k:02d}", bal))
                break
            else:
                logger.debug("slot %d of %s left empty", k, gt["video_id"])
    return records
