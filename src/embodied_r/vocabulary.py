"""One place for each fact of the method: actions, task categories, answer letters.

Everything that names an action, a task category or an option letter imports it from here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

#: The ten camera actions of the paper (reference §2), in the paper's wording.
ACTIONS: tuple[str, ...] = (
    "move forward",
    "move backward",
    "move left",
    "move right",
    "move upward",
    "move downward",
    "rotate left",
    "rotate right",
    "tilt downward",
    "tilt upward",
)

#: Option letters, in order. Multiple-choice questions use a prefix of this.
LETTERS: tuple[str, ...] = tuple("ABCDEFGH")

#: The eight task categories of the paper. The first four come from VSI-Bench
#: (indoor scans), the last four from UrbanVideo-Bench (drone video).
VSI_CATEGORIES: tuple[str, ...] = (
    "object_rel_direction",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
)
URBAN_CATEGORIES: tuple[str, ...] = (
    "landmark_position",
    "counterfactual",
    "progress_evaluation",
    "action_generation",
)
TASK_CATEGORIES: tuple[str, ...] = VSI_CATEGORIES + URBAN_CATEGORIES

#: Sub-levels of relative direction in VSI-Bench; the paper merges them into one category.
REL_DIRECTION_LEVELS: tuple[str, ...] = ("easy", "medium", "hard")

#: VSI-Bench numeric tasks, scored with MRA. The paper drops them; they are kept as
#: ``numeric`` records and selected by params.
VSI_NUMERIC_CATEGORIES: tuple[str, ...] = (
    "object_counting",
    "object_abs_distance",
    "object_size_estimation",
    "room_size_estimation",
)

#: The task categories the embedded synthetic world can generate (one generator per category: all eight).
SYNTHETIC_CATEGORIES: tuple[str, ...] = TASK_CATEGORIES

#: The category names each ``data.source`` kind can hold: what ``data.categories`` may list for it.
#: The official Embodied-R JSON holds questions of both benchmarks.
SOURCE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "embedded": SYNTHETIC_CATEGORIES,
    "urbanvideo": URBAN_CATEGORIES,
    "vsibench": VSI_CATEGORIES + VSI_NUMERIC_CATEGORIES,
    "official": TASK_CATEGORIES + VSI_NUMERIC_CATEGORIES,
}

#: Readable names of the sources, for messages.
SOURCE_NAMES: dict[str, str] = {
    "embedded": "the embedded synthetic world",
    "urbanvideo": "UrbanVideo-Bench",
    "vsibench": "VSI-Bench",
    "official": "the official Embodied-R JSON",
}

#: Official UrbanVideo-Bench category names → this project's snake_case names.
URBAN_CATEGORY_NAMES: dict[str, str] = {
    "Landmark Position": "landmark_position",
    "Counterfactual": "counterfactual",
    "Progress Evaluation": "progress_evaluation",
    "Action Generation": "action_generation",
}

#: A lettered choice line inside a question text: "A. red chair", "(B) left", "C: 3 m".
CHOICE_LINE_RE = re.compile(r"^\s*\(?([A-H])[\.\):]\s*(.+?)\s*$")


def normalize_category(name: str) -> str:
    """Map a category name from any source to the project's snake_case name.

    >>> normalize_category("Landmark Position")
    'landmark_position'
    >>> normalize_category("object_rel_direction_hard")
    'object_rel_direction'
    """
    if name in URBAN_CATEGORY_NAMES:
        return URBAN_CATEGORY_NAMES[name]
    snake = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower()
    for level in REL_DIRECTION_LEVELS:
        if snake == f"object_rel_direction_{level}":
            return "object_rel_direction"
    return snake


def source_categories(kinds: Iterable[str]) -> tuple[str, ...]:
    """The categories the sources ``kinds`` hold together, in vocabulary order, without repeats.

    >>> source_categories(["urbanvideo"])
    ('landmark_position', 'counterfactual', 'progress_evaluation', 'action_generation')
    """
    seen: dict[str, None] = {}
    for kind in kinds:
        seen.update(dict.fromkeys(SOURCE_CATEGORIES[kind]))
    return tuple(seen)


def closest_category(name: str, valid: Iterable[str]) -> str | None:
    """The valid category ``name`` was most likely meant to be, or ``None`` when none is close.

    The official spelling ("Landmark Position") and small typos both find their name.

    >>> closest_category("landmark_postion", TASK_CATEGORIES)
    'landmark_position'
    >>> closest_category("Landmark Position", TASK_CATEGORIES)
    'landmark_position'
    >>> closest_category("telepathy", TASK_CATEGORIES) is None
    True
    """
    valid = tuple(valid)
    normalized = normalize_category(name)
    if normalized in valid:
        return normalized
    found = difflib.get_close_matches(normalized, valid, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_categories_message(names: Iterable[str], valid: Iterable[str], *, what: str) -> str | None:
    """``None`` when every name in ``names`` is in ``valid``; else one sentence naming each bad name with the
    benchmark it belongs to or the closest valid name, then the valid names. ``what`` says whose names ``valid`` are.

    >>> message = unknown_categories_message(["counterfactual", "landmark_postion"], URBAN_CATEGORIES, what="X")
    >>> message.split(";")[0]
    "unknown task categories 'landmark_postion' (did you mean 'landmark_position'?)"
    """
    valid = tuple(valid)
    bad = [name for name in dict.fromkeys(names) if name not in valid]
    if not bad:
        return None
    parts, misspelt = [], False
    for name in bad:
        owners = [SOURCE_NAMES[k] for k in ("vsibench", "urbanvideo") if name in SOURCE_CATEGORIES[k]]
        closest = closest_category(name, valid)
        if owners:
            hint = f"a {owners[0]} category"
        elif closest:
            hint = f"did you mean {closest!r}?"
        else:
            hint = "no valid name is close"
        misspelt |= not owners
        parts.append(f"{name!r} ({hint})")
    if misspelt:
        return f"unknown task categories {', '.join(parts)}; valid for {what}: {', '.join(valid)}"
    return f"task categories {', '.join(parts)} are not in {what}; valid for it: {', '.join(valid)}"
