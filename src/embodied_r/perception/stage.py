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
from embodied_r.validation.answer_checks import INVALID_ANSWERS, invalid_answers_note

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


def dropped_videos(outcome: DescribeOutcome) -> dict[str, dict[str, str]]:
    """Video id → the first dropped entry of that video (the videos whose questions were left out), sorted."""
    by_video: dict[str, dict[str, str]] = {}
    for entry in sorted(outcome.dropped, key=lambda d: (d["video_id"], d["question_id"])):
        by_video.setdefault(entry["video_id"], entry)
    return by_video


def too_many_dropped(outcome: DescribeOutcome, n_videos: int, params: Params, layout: Layout) -> str | None:
    """One paragraph when more than ``keyframes.max_failed_share`` of the videos were dropped (else None)."""
    by_video = dropped_videos(outcome)
    share = len(by_video) / n_videos if n_videos else 0.0
    if not by_video or share <= params.keyframes.max_failed_share:
        return None
    first = next(iter(by_video.values()))
    return (
        f"key frames failed for {len(by_video)} of {n_videos} videos ({len(outcome.dropped)} questions; allowed "
        f"share keyframes.max_failed_share={params.keyframes.max_failed_share}); see "
        f"{layout.descriptions / DROPPED}. First: {first['video_id']}: {first['error']}"
    )


def too_many_failures(outcome: DescribeOutcome, params: Params, layout: Layout) -> str | None:
    """One paragraph when more than ``perception.max_failed_share`` of the questions could not be described."""
    total = len(outcome.samples) + len(outcome.failures)
    share = len(outcome.failures) / total if total else 0.0
    if not outcome.failures or share <= params.perception.max_failed_share:
        return None
    note = invalid_answers_note(outcome.invalid_answers)
    return (
        f"{len(outcome.failures)} of {total} questions could not be described "
        f"(allowed share perception.max_failed_share={params.perception.max_failed_share}); "
        f"see {layout.descriptions / FAILURES}. Finished answers are cached: rerun to retry the rest."
        + (f" {note}" if note else "")
    )


def read_samples(path: Path) -> list[DescribedSample]:
    """Read ``samples.jsonl`` written by :func:`describe_dataset`."""
    return read_jsonl_models(path, DescribedSample, "described sample")
