"""One place for each fact of the method: actions, task categories, answer letters.

Everything that names an action, a task category or an option letter imports it from here.
"""

from __future__ import annotations

import re

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
