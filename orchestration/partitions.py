"""Partitions: one dynamic partition per video of a dataset, registered by ``raw_videos``.

Why a key carries its dataset (``<data_dir>::<video_id>``, e.g. ``data::scene_000``): every params file
shares the checkout's one Dagster instance (``.dagster_home/``) but writes its own ``data_dir``. With bare
video ids, ``raw_videos`` under params B replaced params A's partitions, and ``keyframes --all-partitions``
under A then processed B's videos only and exited 0. Now each dataset keeps its own partitions and
materialization history side by side, and a per-video asset refuses a key of another dataset
(:func:`video_ids_of`).

Why the all-videos run is computed from the files: ``<data_dir>/raw/videos.json`` is what DVC versions, and
``dvc checkout`` restores it without Dagster hearing of it. :func:`all_videos_run_tags` first makes the
instance's partitions of the dataset exactly that file's videos, then selects them as one partition range,
and fails if the range would cover any other key. So a run never skips a video of the current
``raw_videos`` silently, nor touches another dataset's.

A range of dynamic partitions is the keys between its two ends in the order they were added, so
:func:`sync_dataset_partitions` keeps each dataset's keys contiguous: when a dataset's videos change, its keys
are removed and added again, sorted, at the end (Dagster keeps materializations by key: no history is lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

import dagster as dg

from embodied_r.errors import UserError
from orchestration.resources import ProjectResource

VIDEOS = "videos"
SEPARATOR = "::"

videos_partitions = dg.DynamicPartitionsDefinition(name=VIDEOS)

# Dagster's run tags for one run over a partition range (what its UI sets for a single-run backfill, shown by
# Dagster's maintainers in github.com/dagster-io/dagster/discussions/11653); dagster 1.13 exports no public
# constant or `materialize` argument for them, so they are spelt out here rather than imported from dagster._core.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class PartitionsError(UserError, ValueError):
    """Video partitions that do not match the dataset of the params file in use."""


def dataset_name(data_dir: str) -> str:
    """The dataset part of a partition key: ``data_dir`` as written in params, normalised (``./data/`` → ``data``)."""
    return PurePosixPath(data_dir).as_posix()


def video_partition_key(data_dir: str, video_id: str) -> str:
    """The partition key of ``video_id`` in the dataset under ``data_dir``: ``<data_dir>::<video_id>``."""
    return f"{dataset_name(data_dir)}{SEPARATOR}{video_id}"


def _is_of(key: str, data_dir: str) -> bool:
    return key.startswith(dataset_name(data_dir) + SEPARATOR)


def video_ids_of(keys: Iterable[str], data_dir: str) -> list[str]:
    """The video ids of a run's partition ``keys``, all of the dataset under ``data_dir``.

    Raises :class:`PartitionsError` naming the keys of another dataset (a run launched from the UI over
    another params file's partitions): processing them with this params file would be wrong.
    """
    keys = list(keys)
    foreign = sorted(k for k in keys if not _is_of(k, data_dir))
    if foreign:
        raise PartitionsError(
            f"partitions {foreign[:5]}{' ...' if len(foreign) > 5 else ''} ({len(foreign)} of {len(keys)}) are not "
            f"videos of data_dir {dataset_name(data_dir)!r}, the params file's dataset: select only keys starting "
            f"with '{video_partition_key(data_dir, '')}', or run with the params file of their data_dir"
        )
    prefix = len(video_partition_key(data_dir, ""))
    return [k[prefix:] for k in keys]


def sync_dataset_partitions(
    instance: dg.DagsterInstance, data_dir: str, video_ids: Iterable[str], *, partitions: str = VIDEOS
) -> tuple[int, int]:
    """Make the dataset's ``videos`` partitions (or those named ``partitions``: the inbox's) exactly ``video_ids``,
    contiguous; returns (added, removed).

    Other datasets' partitions are left alone; bare keys from before keys carried their dataset are removed.
    """
    wanted = [video_partition_key(data_dir, v) for v in sorted(set(video_ids))]
    existing = list(instance.get_dynamic_partitions(partitions))
    legacy = [k for k in existing if SEPARATOR not in k]
    for key in legacy:
        instance.delete_dynamic_partition(partitions, key)
    existing = [k for k in existing if SEPARATOR in k]
    positions = [i for i, k in enumerate(existing) if _is_of(k, data_dir)]
    ours = [existing[i] for i in positions]
    contiguous = not positions or positions[-1] - positions[0] + 1 == len(positions)
    added, removed = len(set(wanted) - set(ours)), len(set(ours) - set(wanted)) + len(legacy)
    if set(ours) != set(wanted) or not contiguous:
        for key in ours:
            instance.delete_dynamic_partition(partitions, key)
        instance.add_dynamic_partitions(partitions, wanted)
    return added, removed


def all_videos_run_tags(instance: dg.DagsterInstance, project: ProjectResource) -> dict[str, str]:
    """Run tags selecting every video of the current ``raw_videos`` in one run (the single-run backfill policy).

    The videos are those of ``<data_dir>/raw/videos.json`` under ``project``'s params file; the instance's
    partitions of that dataset are brought to match it first. Raises :class:`PartitionsError` when there is
    no ``videos.json`` yet or it lists no video.
    """
    from embodied_r.data.ingest import read_videos

    params = project.load_params()
    raw = project.layout(params).raw
    if not (raw / "videos.json").is_file():
        raise PartitionsError(
            f"{raw / 'videos.json'} is missing: materialize raw_videos first (`embodied-r materialize raw_videos`)"
        )
    video_ids = sorted(read_videos(raw))
    if not video_ids:
        raise PartitionsError(f"{raw / 'videos.json'} lists no video: check data.categories and the exclusions")
    sync_dataset_partitions(instance, params.data_dir, video_ids)
    wanted = {video_partition_key(params.data_dir, v) for v in video_ids}
    keys = list(instance.get_dynamic_partitions(VIDEOS))
    positions = [i for i, k in enumerate(keys) if k in wanted]
    covered = keys[positions[0] : positions[-1] + 1] if positions else []
    if set(covered) != wanted:  # cannot happen after the sync; a range must never run more or fewer videos
        raise PartitionsError(
            f"the Dagster instance's video partitions do not match {raw / 'videos.json'} "
            f"({len(wanted - set(covered))} missing, {len(set(covered) - wanted)} of other datasets in the range): "
            "rematerialize raw_videos"
        )
    return {RANGE_START_TAG: covered[0], RANGE_END_TAG: covered[-1]}


def video_run_key(instance: dg.DagsterInstance, project: ProjectResource, video: str) -> str:
    """The partition key for a one-video run of ``video`` (a video id, or a full key of this dataset).

    Raises :class:`PartitionsError` when the video is not in the current ``raw_videos``.
    """
    params = project.load_params()
    video_id = video_ids_of([video], params.data_dir)[0] if SEPARATOR in video else video
    all_videos_run_tags(instance, project)  # registers the dataset's partitions from videos.json
    key = video_partition_key(params.data_dir, video_id)
    if not instance.has_dynamic_partition(VIDEOS, key):
        raw = project.layout(params).raw
        raise PartitionsError(f"{video_id!r} is not a video of {raw / 'videos.json'}: pick one of its video ids")
    return key
