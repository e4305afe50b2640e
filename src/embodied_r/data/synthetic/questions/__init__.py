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

The generators are grouped by what they ask about: ``objects.py`` (object relations, appearance order, landmark
position) and ``navigation.py`` (route, counterfactual, progress, next action); the draft, the video context and
the balancing they share are in ``common.py``; this module picks a category per slot and assigns the letters.

Count: slot ``k`` of video ``i`` asks category ``(i + k) mod C``; when it has no new unambiguous question for
that video, the slot falls back to the category with the fewest questions so far (see ``generate_questions``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from embodied_r.data.records import QuestionRecord, compose_question
from embodied_r.data.synthetic.questions.common import Balancer, Draft, Generator, VideoContext
from embodied_r.data.synthetic.questions.navigation import _action, _counterfactual, _progress, _route, action_runs
from embodied_r.data.synthetic.questions.objects import _appearance_order, _landmark, _rel_direction, _rel_distance
from embodied_r.vocabulary import LETTERS, TASK_CATEGORIES

logger = logging.getLogger(__name__)

DATA_SOURCE = "embedded"


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
