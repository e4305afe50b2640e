"""Ingest a dataset: records, videos and the scene split, written byte-deterministically.

This is the library side of the ``raw_videos`` asset. Whatever the source (the embedded
synthetic world or a real benchmark), the output folder has the same layout::

    records.jsonl      one QuestionRecord per line, sorted by question id, split assigned
    videos.json        video_id -> {path, size, sha256}; only videos some record uses
    exclusions.jsonl   every record left out, with its reason (a bad record, a video key frames would refuse:
                       ``too_short``, ``no_frames``, ``unreadable_video``; a category not selected, ...)
    summary.json       counts per category, per split, per exclusion reason
    videos/            the embedded world's mp4 files (real data stays where it is)
    ground_truth/      the embedded world's per-video geometry
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from embodied_r.config import KeyframesConfig, Params, SourceConfig
from embodied_r.data.records import DatasetBuild, Exclusion, QuestionRecord, write_json, write_jsonl
from embodied_r.data.split import assign_splits
from embodied_r.hashing import sha256_file
from embodied_r.keyframes import keyframe_refusal
from embodied_r.layout import RECORDS_FILE, Layout

log = logging.getLogger(__name__)

#: Exclusions that are choices in params (not faults): logged at INFO, the others at WARNING.
SELECTION_REASONS: tuple[str, ...] = ("category_not_selected", "over_max_questions")


class IngestSummary(BaseModel):
    """What the ingest produced; becomes the asset's metadata and ``summary.json``."""

    model_config = ConfigDict(frozen=True)

    source: str
    videos: int
    questions: int
    per_category: dict[str, int]
    #: Questions per benchmark (``data_source``): one entry, or one per ``data.sources`` entry.
    per_source: dict[str, int] = {}
    per_split: dict[str, int]
    scenes_per_split: dict[str, int]
    exclusions: dict[str, int]


def load_source(params: Params, out_dir: Path, *, progress: bool = True) -> DatasetBuild:
    """Build the dataset named by ``params.data`` (one source, or several). Video paths come back absolute.

    With several sources (``data.sources``) every question and video id is prefixed with its source's kind
    (``vsibench__17``, ``urbanvideo__flight1.mp4``): each benchmark numbers its questions alike, so ids would
    collide. One source keeps its ids as they are.
    """
    if params.data.source == "embedded":
        from embodied_r.data.synthetic import generate_embedded_dataset

        build = generate_embedded_dataset(params.synthetic, out_dir, progress=progress)
        build.videos = {vid: str((out_dir / rel).resolve()) for vid, rel in build.videos.items()}
        return build

    sources = params.data.source_list()
    if len(sources) == 1:
        return _load_one(sources[0], params, out_dir)
    merged = DatasetBuild()
    for source in sources:
        build = _load_one(source, params, out_dir)
        prefix = f"{source.kind}__"
        merged.records += [
            r.model_copy(update={"question_id": prefix + r.question_id, "video_id": prefix + r.video_id})
            for r in build.records
        ]
        merged.videos.update({prefix + video_id: path for video_id, path in build.videos.items()})
        merged.exclusions += build.exclusions  # items name the row of the source's own file
        log.info("%s: %d questions over %d videos", source.kind, len(build.records), len(build.videos))
    return merged


def _load_one(source: SourceConfig, params: Params, out_dir: Path) -> DatasetBuild:
    """One real benchmark, read by the adapter of its kind."""
    from embodied_r.data import adapters

    annotations, videos_dir = Path(source.annotations), Path(source.videos_dir)
    if source.kind == "official":
        return adapters.load_official_json(annotations, videos_dir)
    if source.kind == "urbanvideo":
        return adapters.load_urbanvideo(annotations, videos_dir)
    if source.kind == "vsibench":
        return adapters.load_vsibench(annotations, videos_dir, extract_dir=extract_dir(params, out_dir))
    raise ValueError(f"data.source: unknown source {source.kind!r}")  # unreachable: params validate it


def project_root(params: Params, out_dir: Path) -> Path:
    """The project root of an ingest into ``Layout(root, params.data_dir).raw``; ``out_dir``'s parent otherwise."""
    out_dir = Path(out_dir).resolve()
    depth = len(Path(params.data_dir).parts) + 1
    if len(out_dir.parents) >= depth:
        candidate = out_dir.parents[depth - 1]
        if Layout(candidate, params.data_dir).raw.resolve() == out_dir:
            return candidate
    return out_dir.parent


def extract_dir(params: Params, out_dir: Path) -> Path:
    """Where VSI-Bench zips are extracted: ``data.extract_dir``, relative to the project root."""
    path = Path(params.data.extract_dir).expanduser()
    return path if path.is_absolute() else project_root(params, out_dir) / path


def exclude_unusable_videos(build: DatasetBuild, cfg: KeyframesConfig) -> list[Exclusion]:
    """Leave out the questions of every video key-frame extraction would refuse; return their exclusions.

    The rule is the key-frame stage's own (:func:`~embodied_r.keyframes.keyframe_refusal`: unreadable, no
    frames, too short for ``keyframes.min_frames`` samples), so what ingest keeps, key frames can process.
    Their questions leave ``build.records``, each with an exclusion naming the reason, the file and the fix.
    """
    by_video: dict[str, list[QuestionRecord]] = {}
    for record in build.records:
        by_video.setdefault(record.video_id, []).append(record)
    exclusions: list[Exclusion] = []
    refused: set[str] = set()
    for video_id in sorted(by_video):
        problem = keyframe_refusal(Path(build.videos[video_id]), cfg)
        if problem is None:
            continue
        refused.add(video_id)
        log.warning("video %s excluded (%s), %d questions: %s", video_id, problem.reason, len(by_video[video_id]),
                    problem)  # fmt: skip
        exclusions += [
            Exclusion(source=r.data_source, item=r.question_id, reason=problem.reason, detail=str(problem))
            for r in by_video[video_id]
        ]
    build.records = [r for r in build.records if r.video_id not in refused]
    return exclusions


def log_exclusions(exclusions: list[Exclusion]) -> None:
    """Say how many records were left out for each reason, with one example each (the rest: exclusions.jsonl)."""
    counts = Counter(e.reason for e in exclusions)
    for reason, count in sorted(counts.items()):
        example = next(e for e in exclusions if e.reason == reason)
        level = logging.INFO if reason in SELECTION_REASONS else logging.WARNING
        log.log(level, "excluded %d questions: %s (e.g. %s: %s)", count, reason, example.item, example.detail)


def select_records(
    records: list[QuestionRecord], categories: tuple[str, ...], max_questions: int | None
) -> tuple[list[QuestionRecord], list[Exclusion]]:
    """Keep the categories asked for (the paper's eight by default) and cap the count.

    Dropped records are returned as exclusions, so nothing disappears silently.
    """
    wanted = set(categories)
    kept, excluded = [], []
    for record in sorted(records, key=lambda r: r.question_id):
        if record.category not in wanted:
            excluded.append(
                Exclusion(
                    source=record.data_source,
                    item=record.question_id,
                    reason="category_not_selected",
                    detail=f"category {record.category!r} is not in data.categories",
                )
            )
        elif max_questions is not None and len(kept) >= max_questions:
            excluded.append(Exclusion(source=record.data_source, item=record.question_id, reason="over_max_questions"))
        else:
            kept.append(record)
    return kept, excluded


def _project_relative(path: Path, out_dir: Path, root: Path) -> str:
    """``path`` relative to ``out_dir`` when it lies in the project ``root`` (portable: the embedded world's
    videos, extracted VSI-Bench videos under ``.cache/``), else absolute (a dataset elsewhere on this machine)."""
    resolved = path.resolve()
    if resolved.is_relative_to(root.resolve()):
        return Path(os.path.relpath(resolved, out_dir.resolve())).as_posix()
    return resolved.as_posix()


def ingest(params: Params, out_dir: Path, *, progress: bool = True) -> IngestSummary:
    """Build the dataset named by ``params`` into ``out_dir`` (emptied first: it is an output)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    build = load_source(params, out_dir, progress=progress)
    refused = exclude_unusable_videos(build, params.keyframes)
    records, dropped = select_records(build.records, params.data.categories, params.data.max_questions)
    records = assign_splits(records, params.split.ratios, params.split.seed)
    exclusions = sorted([*build.exclusions, *refused, *dropped], key=lambda e: (e.item, e.reason))
    log_exclusions(exclusions)

    used = sorted({r.video_id for r in records})
    videos = {}
    for video_id in used:
        path = Path(build.videos[video_id])
        videos[video_id] = {
            "path": _project_relative(path, out_dir, project_root(params, out_dir)),
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
    # Embedded videos no record uses (all their questions filtered out) are not kept.
    for video_id, path in build.videos.items():
        if video_id not in videos and Path(path).is_relative_to(out_dir.resolve()):
            Path(path).unlink(missing_ok=True)

    write_jsonl(out_dir / RECORDS_FILE, records)
    write_jsonl(out_dir / "exclusions.jsonl", exclusions)
    write_json(out_dir / "videos.json", videos)
    summary = IngestSummary(
        source=params.data.label,
        videos=len(videos),
        questions=len(records),
        per_category=dict(sorted(Counter(r.category for r in records).items())),
        per_source=dict(sorted(Counter(r.data_source for r in records).items())),
        per_split=dict(sorted(Counter(r.split for r in records).items())),
        scenes_per_split=dict(
            sorted(Counter(s for *_, s in {(r.data_source, r.scene_name, r.split) for r in records}).items())
        ),
        exclusions=dict(sorted(Counter(e.reason for e in exclusions).items())),
    )
    write_json(out_dir / "summary.json", summary.model_dump())
    log.info("ingested %d questions over %d videos from %s", summary.questions, summary.videos, summary.source)
    return summary


def read_videos(data_dir: Path) -> dict[str, dict]:
    """The ``videos.json`` of an ingested dataset, with paths resolved against ``data_dir``."""
    import json

    raw = json.loads((data_dir / "videos.json").read_text(encoding="utf-8"))
    for entry in raw.values():
        entry["path"] = str((data_dir / entry["path"]).resolve())
    return raw
