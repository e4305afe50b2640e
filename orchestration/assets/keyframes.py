"""``keyframes``: the paper's key frames of each video, one partition per video."""

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from embodied_r.data.ingest import read_videos
from embodied_r.keyframes import FAILURES_DIR, extract_many, write_failure
from orchestration.assets.data import raw_videos
from orchestration.media import image_markdown
from orchestration.partitions import video_ids_of, video_partition_key, videos_partitions
from orchestration.resources import ProjectResource

FAILURES = FAILURES_DIR


@dg.asset(
    group_name="perception",
    kinds={"opencv"},
    deps=[raw_videos],
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
    videos = read_videos(layout.raw)
    keys = video_ids_of(context.partition_keys, params.data_dir)  # refuses another dataset's partitions
    unknown = sorted(set(keys) - set(videos))
    if unknown:
        raise dg.Failure(
            description=f"partitions {unknown[:5]} are not in {layout.raw / 'videos.json'}; rematerialize raw_videos"
        )
    paths = {key: Path(videos[key]["path"]) for key in keys}
    results, failures = extract_many(paths, params.keyframes, layout.keyframes, progress=len(keys) > 1)

    for video_id, summary in sorted(results.items()):
        write_failure(layout.keyframes, video_id, None)
        out_dir = layout.keyframes / video_id
        manifest = json.loads((out_dir / "manifest.json").read_text())
        overlaps = [kf["overlap"] for kf in manifest["keyframes"] if kf.get("overlap") is not None]
        yield dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=video_partition_key(params.data_dir, video_id),
            metadata={
                "count": summary["count"],
                "mean_overlap": round(sum(overlaps) / len(overlaps), 4) if overlaps else None,
                "decode_seconds": summary.get("decode_seconds"),
                "resumed": summary.get("skipped", False),
                "indices": dg.MetadataValue.json([kf["index"] for kf in manifest["keyframes"]]),
                "contact_sheet": image_markdown(out_dir / "contact_sheet.png", f"{video_id} key frames"),
                "path": dg.MetadataValue.path(str(out_dir)),
            },
        )
    for failure in failures:
        write_failure(layout.keyframes, failure["video_id"], failure)
        context.log.error("key frames of %s failed (%s): %s", failure["video_id"], failure["reason"], failure["error"])

    share = len(failures) / len(keys) if keys else 0.0
    if failures and share > params.keyframes.max_failed_share:
        raise dg.Failure(
            description=(
                f"{len(failures)} of {len(keys)} videos failed key-frame extraction "
                f"(allowed share keyframes.max_failed_share={params.keyframes.max_failed_share}); "
                f"see {layout.keyframes / FAILURES}. First: {failures[0]['video_id']}: {failures[0]['error']} "
                "Fix or remove these videos and rematerialize raw_videos, or raise keyframes.max_failed_share "
                "to go on without them (their questions are then left out)."
            ),
            metadata={"failures": dg.MetadataValue.json(failures)},
        )
