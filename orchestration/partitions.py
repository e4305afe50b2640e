"""Partitions: one dynamic partition per video, registered by ``raw_videos``."""

import dagster as dg

VIDEOS = "videos"

videos_partitions = dg.DynamicPartitionsDefinition(name=VIDEOS)
