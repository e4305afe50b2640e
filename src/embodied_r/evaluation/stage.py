"""Evaluation inputs that need more than the test rows: the same questions at other perception-noise levels."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from embodied_r.config import Params
from embodied_r.data.ingest import read_videos
from embodied_r.data.records import read_records
from embodied_r.layout import Layout
from embodied_r.perception.cache import DescriptionCache
from embodied_r.perception.describe import describe_samples
from embodied_r.training.dataset import build_training_set
from embodied_r.training.rows import TrainingRow

log = logging.getLogger(__name__)

#: The oracle's noise settings a noise study may change.
NOISE_KEYS = ("miss_object_prob", "wrong_color_prob", "wrong_action_prob")


def noisy_test_rows(params: Params, layout: Layout, tokenizer: Any, noise: Mapping[str, float]) -> list[TrainingRow]:
    """The test questions described by the oracle at another noise level (e.g. all 0: perfect perception), as rows.

    Only for the embedded world (the oracle needs ground truth). ``noise`` overrides the oracle's
    ``miss_object_prob`` / ``wrong_color_prob`` / ``wrong_action_prob``. The descriptions go through the same
    cache as ``vlm_descriptions`` (another noise level is another cache key), so a rerun costs nothing.
    """
    if params.perception.backend != "oracle":
        raise ValueError("a perception-noise study needs perception.backend: oracle (the embedded world)")
    unknown = sorted(set(noise) - set(NOISE_KEYS))
    if unknown:
        raise ValueError(f"unknown noise settings {unknown}; allowed: {list(NOISE_KEYS)}")
    cfg = params.perception.model_copy(update=dict(noise))
    records = [r for r in read_records(layout.records) if r.split == "test"]
    outcome = describe_samples(
        records,
        keyframes_root=layout.keyframes,
        videos=read_videos(layout.raw),
        ground_truth_root=layout.raw / "ground_truth",
        cfg=cfg,
        cache=DescriptionCache(layout.root / params.perception.cache_dir),
        progress=False,
    )
    if outcome.failures:
        log.warning("%d test questions could not be described at noise %s", len(outcome.failures), dict(noise))
    build = build_training_set(outcome.samples, tokenizer, params.training_set)
    return build.rows_by_split["test"]
