"""``keyframes``: the paper's key frames of each video, one partition per video.

Library: :func:`embodied_r.keyframes.stage.extract_keyframes`."""

from collections.abc import Iterator

import dagster as dg

from embodied_r.data.ingest import read_videos
from embodied_r.keyframes.stage import FAILURES_DIR, extract_keyframes
from orchestration.assets import code_version
from orchestration.assets.data import raw_videos
from orchestration.media import image_markdown
from orchestration.partitions import video_ids_of, video_partition_key, videos_partitions
from orchestration.resources import ProjectResource
from orchestration.stages import library_stage

FAILURES = FAILURES_DIR


@dg.asset(
    group_name="perception",
    kinds={"opencv"},
    deps=[raw_videos],
    code_version=code_version("keyframes"),
    partitions_def=videos_partitions,
    # Many partitions per run: one process extracts a whole backfill, not one process per video.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Each partition reports its own materialization, so one bad video does not hide the others.
    output_required=False,
)
def keyframes(context: dg.AssetExecutionContext, project: ProjectResource) -> Iterator[dg.AssetMaterialization]:
    """Key frames per video (ORB + RANSAC homography overlap, clamped to [min, max]).

    Writes ``data/keyframes/<video_id>/``: the key-frame images, ``manifest.json`` (indices,
    timestamps, overlaps, why each frame was kept) and ``contact_sheet.png``. A video that cannot
    be used (unreadable, too short) fails its partition and is recorded, with the fix, in
    ``data/keyframes/_failures/``; the others complete, and ``vlm_descriptions`` leaves the failed
    video's questions out. The run fails when more than ``keyframes.max_failed_share`` of its videos fail.
    """
    params = project.load_params()
    layout = project.layout(params)
    keys = video_ids_of(context.partition_keys, params.data_dir)  # refuses another dataset's partitions
    unknown = sorted(set(keys) - set(read_videos(layout.raw)))
    if unknown:
        raise dg.Failure(
            description=f"partitions {unknown[:5]} are not in {layout.raw / 'videos.json'}; rematerialize raw_videos"
        )
    with library_stage(context):
        outcome = extract_keyframes(params, layout, keys)
    for video_id, summary in outcome.videos.items():
        yield dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=video_partition_key(params.data_dir, video_id),
            metadata={
                **{k: summary[k] for k in ("count", "mean_overlap", "decode_seconds", "resumed")},
                "indices": dg.MetadataValue.json(summary["indices"]),
                "contact_sheet": image_markdown(summary["path"] / "contact_sheet.png", f"{video_id} key frames"),
                "path": dg.MetadataValue.path(str(summary["path"])),
            },
        )
    too_many = outcome.too_many_failures(params.keyframes.max_failed_share, layout.keyframes / FAILURES)
    if too_many:
        raise dg.Failure(description=too_many, metadata={"failures": dg.MetadataValue.json(outcome.failures)})
