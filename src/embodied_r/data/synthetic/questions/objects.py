"""Questions about objects: where one is relative to others (direction, distance), the order they appear in,
and where a landmark is at the end of the video (VSI-Bench and UrbanVideo-Bench object categories)."""

from __future__ import annotations

import itertools

from embodied_r.data.synthetic.geometry import (
    RELATIONS,
    angle_margin,
    bearing,
    box_gap,
    egocentric_relation,
    heading_bearing,
    horizontal_distance,
    pose_at,
    relation_margin,
)
from embodied_r.data.synthetic.questions.common import Balancer, Draft, VideoContext
from embodied_r.vocabulary import REL_DIRECTION_LEVELS


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
