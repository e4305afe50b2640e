"""The perception stage over a whole ingested dataset (the library side of ``vlm_descriptions``).

Reads the records and videos of ``raw_videos`` and the key frames of ``keyframes``, describes
every question's key frames through the cache, and writes::

    samples.jsonl    one DescribedSample per described question, sorted by question id
    failures.jsonl   questions that could not be described this run (retried on the next)
    dropped.jsonl    questions left out because key frames failed for their video (with the fix)
    invalid_answers.jsonl  answers failing the per-record data checks: re-asked next run, or given up

Run-dependent figures (calls, cache hits, tokens) are returned, not written, so the files are
byte-identical whenever the descriptions are.
"""

from __future__ import annotations

import logging
from pathlib import Path

from embodied_r.config import Params
from embodied_r.data.ingest import read_videos
from embodied_r.data.records import QuestionRecord, read_jsonl_models, read_records, write_jsonl
from embodied_r.keyframes import FAILURES_DIR, read_failures
from embodied_r.layout import Layout
from embodied_r.perception.cache import DescriptionCache
from embodied_r.perception.describe import DescribeOutcome, describe_samples
from embodied_r.perception.records import DescribedSample
from embodied_r.validation.answer_checks import INVALID_ANSWERS

log = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
FAILURES = "failures.jsonl"
DROPPED = "dropped.jsonl"


def drop_failed_videos(
    records: list[QuestionRecord], keyframes_root: Path
) -> tuple[list[QuestionRecord], list[dict[str, str]]]:
    """Split off the questions whose video failed key-frame extraction (recorded in ``keyframes/_failures``).

    Such a video has no key frames to describe; its questions are reported as dropped, with the error and
    the fix, instead of failing every one of them here. Whether that many failed videos are acceptable is
    ``keyframes.max_failed_share``'s to say.
    """
    failed = read_failures(keyframes_root)
    kept, dropped = [], []
    for record in records:
        failure = failed.get(record.video_id)
        if failure is None:
            kept.append(record)
            continue
        dropped.append(
            {
                "question_id": record.question_id,
                "video_id": record.video_id,
                "reason": failure.get("reason", "unreadable_video"),
                "error": f"key frames failed: {failure.get('error', '?')} The question is left out; fix or replace "
                "the video and rematerialize raw_videos and keyframes to bring it back.",
            }
        )
    return kept, dropped


def describe_dataset(params: Params, layout: Layout, *, progress: bool = True, backend=None) -> DescribeOutcome:
    """Describe every ingested question; write ``samples.jsonl``, ``failures.jsonl`` and ``dropped.jsonl``.

    Questions whose video failed key-frame extraction are not described (:func:`drop_failed_videos`).
    """
    records, dropped = drop_failed_videos(read_records(layout.records), layout.keyframes)
    if dropped:
        log.warning(
            "%d questions of %d videos left out: key-frame extraction failed for their videos (see %s)",
            len(dropped), len({d["video_id"] for d in dropped}), layout.keyframes / FAILURES_DIR,
        )  # fmt: skip
    videos = read_videos(layout.raw)
    gt_root = layout.raw / "ground_truth"
    cache = DescriptionCache(layout.root / params.perception.cache_dir)
    outcome = describe_samples(
        records,
        keyframes_root=layout.keyframes,
        videos=videos,
        ground_truth_root=gt_root if gt_root.is_dir() else None,
        cfg=params.perception,
        backend=backend,
        cache=cache,
        progress=progress,
        validation=params.validation,
    )
    out = layout.descriptions
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / SAMPLES, sorted(outcome.samples, key=lambda s: s.question_id))
    write_jsonl(out / FAILURES, sorted(outcome.failures, key=lambda f: f["question_id"]))
    outcome.dropped = sorted(dropped, key=lambda d: d["question_id"])
    write_jsonl(out / DROPPED, outcome.dropped)
    write_jsonl(out / INVALID_ANSWERS, outcome.invalid_answers)
    log.info(
        "described %d questions (%d failed): %d backend calls, %d cache hits",
        len(outcome.samples),
        len(outcome.failures),
        outcome.stats.get("calls", 0),
        outcome.stats.get("cache_hits", 0),
    )
    return outcome


def read_samples(path: Path) -> list[DescribedSample]:
    """Read ``samples.jsonl`` written by :func:`describe_dataset`."""
    return read_jsonl_models(path, DescribedSample, "described sample")
