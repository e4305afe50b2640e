"""Evaluation inputs that need more than the test rows: the same questions under perfect perception."""

from __future__ import annotations

import logging
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


def perfect_perception_test_rows(params: Params, layout: Layout, tokenizer: Any) -> list[TrainingRow]:
    """The test questions described by the zero-noise oracle (perfect perception), as LM rows.

    Only for the embedded world (the oracle needs ground truth). The descriptions go through the same
    cache as ``vlm_descriptions`` (zero noise is a different cache key), so a rerun costs nothing.
    """
    if params.perception.backend != "oracle":
        raise ValueError("perfect perception needs perception.backend: oracle (the embedded world)")
    cfg = params.perception.model_copy(
        update={"miss_object_prob": 0.0, "wrong_color_prob": 0.0, "wrong_action_prob": 0.0}
    )
    records = [r for r in read_records(layout.raw / "records.jsonl") if r.split == "test"]
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
        log.warning("%d test questions could not be described with perfect perception", len(outcome.failures))
    build = build_training_set(outcome.samples, tokenizer, params.training_set)
    return build.rows_by_split["test"]
