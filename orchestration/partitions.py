"""Partitions: one dynamic partition per video, registered by ``raw_videos``."""

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

VIDEOS = "videos"

videos_partitions = dg.DynamicPartitionsDefinition(name=VIDEOS)


def all_videos_run_tags(instance: dg.DagsterInstance) -> dict[str, str]:
    """Run tags selecting every video partition in one run (the assets' single-run backfill policy).

    Raises ``ValueError`` when there are no partitions yet (``raw_videos`` registers them).
    """
    keys = instance.get_dynamic_partitions(VIDEOS)
    if not keys:
        raise ValueError("no video partitions yet: materialize raw_videos first")
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
