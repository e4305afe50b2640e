"""``raw_videos``: the ingested dataset (videos, question records, scene split)."""

import dagster as dg

from embodied_r.data.ingest import ingest, read_videos
from embodied_r.hashing import sha256_file
from orchestration.assets import code_version
from orchestration.partitions import sync_dataset_partitions
from orchestration.resources import ProjectResource


def _markdown_counts(counts: dict[str, int], key: str) -> str:
    rows = "\n".join(f"| {name} | {n} |" for name, n in counts.items())
    return f"| {key} | count |\n|---|---|\n{rows}"


@dg.asset(group_name="data", kinds={"python"}, code_version=code_version("raw_videos"))
def raw_videos(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    """The ingested dataset: video files, question records with their scene split, exclusions.

    Registers one ``videos`` dynamic partition per video for the per-video assets, keyed
    ``<data_dir>::<video_id>`` (see :mod:`orchestration.partitions`).
    """
    params = project.load_params()
    layout = project.layout(params)
    out = layout.raw
    summary = ingest(params, out)
    videos = read_videos(out)
    added, removed = sync_dataset_partitions(context.instance, params.data_dir, videos)
    records_hash = sha256_file(layout.records)
    context.log.info("%d videos, %d questions; partitions +%d -%d", summary.videos, summary.questions, added, removed)
    return dg.MaterializeResult(
        metadata={
            "source": summary.source,
            "videos": summary.videos,
            "questions": summary.questions,
            "dagster/row_count": summary.questions,
            "questions_per_category": dg.MetadataValue.md(_markdown_counts(summary.per_category, "category")),
            "questions_per_split": dg.MetadataValue.json(summary.per_split),
            "scenes_per_split": dg.MetadataValue.json(summary.scenes_per_split),
            "exclusions": dg.MetadataValue.json(summary.exclusions),
            "records_sha256": records_hash,
            "path": dg.MetadataValue.path(str(out)),
        },
        data_version=dg.DataVersion(records_hash[:16]),
    )
