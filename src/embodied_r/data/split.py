"""Scene-level train/val/test split (reference §4).

The split is by scene, so no scene appears in two splits, seeded, so it is the same on every
machine (the official code shuffles without a seed), and made within each source, so each
benchmark of a multi-source run is split in the same shares.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from embodied_r.data.records import QuestionRecord

SPLITS: tuple[str, str, str] = ("train", "val", "test")


def split_scenes(scenes: Sequence[str], ratios: Sequence[float], seed: int) -> dict[str, str]:
    """Assign each scene to a split.

    Scenes are sorted, shuffled with ``seed`` and cut by ``ratios`` (train, val, test).
    Counts are rounded down for train and val; the test split takes the rest. When there
    are at least as many scenes as non-zero ratios, every split with a non-zero ratio
    gets at least one scene, so a tiny dataset still has something to test on.

    >>> split_scenes(["a", "b", "c", "d"], (0.5, 0.25, 0.25), seed=0)
    {'c': 'train', 'a': 'train', 'b': 'val', 'd': 'test'}
    """
    unique = sorted(set(scenes))
    random.Random(seed).shuffle(unique)
    n = len(unique)
    counts = [int(n * r) for r in ratios[:2]]
    counts.append(n - sum(counts))
    wanted = [i for i, r in enumerate(ratios) if r > 0]
    if n >= len(wanted):
        for i in wanted:
            while counts[i] == 0:
                donor = max(range(3), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    assignment: dict[str, str] = {}
    start = 0
    for split, count in zip(SPLITS, counts, strict=True):
        for scene in unique[start : start + count]:
            assignment[scene] = split
        start += count
    return assignment


def assign_splits(records: Sequence[QuestionRecord], ratios: Sequence[float], seed: int) -> list[QuestionRecord]:
    """Return the records with ``split`` set from their scene, split within each source.

    Each ``data_source`` (one benchmark) has its scenes split on their own (:func:`split_scenes`), so every
    benchmark of a multi-source run keeps the ratios in each split — a small benchmark is not left out of the
    test split by the shuffle of a large one — and scenes of two benchmarks never share a split decision by
    sharing a name. With one source this is the plain scene split.
    """
    by_source: dict[str, set[str]] = {}
    for record in records:
        by_source.setdefault(record.data_source, set()).add(record.scene_name)
    assignment = {
        (source, scene): split
        for source, scenes in by_source.items()
        for scene, split in split_scenes(sorted(scenes), ratios, seed).items()
    }
    return [r.model_copy(update={"split": assignment[(r.data_source, r.scene_name)]}) for r in records]
