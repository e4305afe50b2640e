"""Questions about the camera's own movement: the route taken, a counterfactual turn, the progress along an
instruction, and the next action (VSI-Bench route planning and UrbanVideo-Bench navigation categories)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from embodied_r.data.synthetic.geometry import (
    bearing,
    heading_bearing,
    horizontal_distance,
    point_footprint_distance,
    pose_at,
)
from embodied_r.data.synthetic.questions.common import Balancer, Draft, VideoContext
from embodied_r.data.synthetic.trajectory import OPPOSITE

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
