"""``predictions``: the registered model's answers to the inbox's questions, one partition per inbox video.

Library: :func:`embodied_r.predictions.stage.predict_videos`. The partitions (``inbox_videos``, keyed
``<data_dir>::<video_id>`` as the dataset's videos are, see :mod:`orchestration.partitions`) are registered by the
inbox sensor (:mod:`orchestration.sensors`) as videos arrive, or by ``embodied-r materialize predictions
--all-partitions`` (every video of the inbox with a question, in one run: the DVC stage).
"""

from collections.abc import Iterator

import dagster as dg

from embodied_r.errors import UserError
from embodied_r.predictions import inbox_folder, predict_videos, read_inbox
from orchestration.assets import code_version
from orchestration.assets.evaluation import evaluation_results
from orchestration.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    PartitionsError,
    sync_dataset_partitions,
    video_ids_of,
    video_partition_key,
)
from orchestration.resources import ProjectResource
from orchestration.stages import library_stage

INBOX_VIDEOS = "inbox_videos"
inbox_partitions = dg.DynamicPartitionsDefinition(name=INBOX_VIDEOS)


def _markdown_counts(counts: dict[str, int]) -> str:
    rows = "\n".join(f"| {answer} | {n} |" for answer, n in counts.items())
    return f"| answer | count |\n|---|---|\n{rows}"


@dg.asset(
    group_name="predictions",
    kinds={"pytorch", "mlflow"},
    # The model is the registry's champion, which evaluation_results moves: the edge shows where answers come from.
    deps=[evaluation_results],
    code_version=code_version("predictions"),
    partitions_def=inbox_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),  # many videos, one loaded model
    output_required=False,  # each video reports its own materialization: one bad video does not hide the others
)
def predictions(context: dg.AssetExecutionContext, project: ProjectResource) -> Iterator[dg.AssetMaterialization]:
    """Every question of ``inbox/questions.json`` about each video, answered by ``predictions.model`` of the
    registry (the ``champion``): ``data/predictions/<video_id>.jsonl``, a row per question (answer letter and
    text, ``<think>``, key frames, descriptions, model version, seconds; a question that could not be answered:
    its error). A video that cannot be used fails its partition with one message naming the file and the fix."""
    params = project.load_params()
    layout = project.layout(params)
    video_ids = video_ids_of(context.partition_keys, params.data_dir)  # refuses another dataset's partitions
    with library_stage(context, UserError):  # no model, no inbox: one paragraph for every video
        run = predict_videos(params, layout, video_ids)
    for video_id, outcome in run.outcomes.items():
        metadata = {
            "questions": outcome.questions,
            "answered": outcome.answered,
            "errors": outcome.errors,
            "answer_distribution": dg.MetadataValue.md(_markdown_counts(outcome.answer_distribution)),
            "seconds": outcome.seconds,
            "seconds_per_stage": dg.MetadataValue.json(outcome.stage_seconds),
            "model": outcome.model,
            "model_version": outcome.model_version,
            "path": dg.MetadataValue.path(str(outcome.path)),
        }
        if outcome.accuracy is not None:  # the questions file gave answers
            metadata["accuracy"] = outcome.accuracy
        yield dg.AssetMaterialization(
            asset_key=context.asset_key, partition=video_partition_key(params.data_dir, video_id), metadata=metadata
        )
    if run.failures:
        raise dg.Failure(
            description="\n\n".join(run.failures.values()),
            metadata={"failed_videos": dg.MetadataValue.json(sorted(run.failures))},
        )


def inbox_video_ids(project: ProjectResource) -> list[str]:
    """The inbox videos that have at least one question (those the asset can answer), sorted."""
    params = project.load_params()
    inbox = read_inbox(inbox_folder(params, project.root_path), params.predictions.questions_file)
    return sorted(v for v in inbox.videos if inbox.questions.get(v) or inbox.problems.get(v))


def inbox_run_tags(instance: dg.DagsterInstance, project: ProjectResource) -> dict[str, str]:
    """Run tags selecting every inbox video with a question in one run (``--all-partitions``, the DVC stage); the
    instance's ``inbox_videos`` partitions of this dataset are first made exactly those videos."""
    params = project.load_params()
    video_ids = inbox_video_ids(project)
    if not video_ids:
        folder = inbox_folder(params, project.root_path)
        raise PartitionsError(
            f"the inbox {folder} holds no video with a question: put videos there and their questions in "
            f"{folder / params.predictions.questions_file} (predictions.inbox, predictions.questions_file)"
        )
    sync_dataset_partitions(instance, params.data_dir, video_ids, partitions=INBOX_VIDEOS)
    keys = [video_partition_key(params.data_dir, v) for v in video_ids]
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def inbox_run_key(instance: dg.DagsterInstance, project: ProjectResource, video: str) -> str:
    """The partition key of a one-video run of the inbox ``video`` (``--partition VIDEO_ID``), registered."""
    params = project.load_params()
    video_id = video_ids_of([video], params.data_dir)[0] if "::" in video else video
    if video_id not in inbox_video_ids(project):
        folder = inbox_folder(params, project.root_path)
        raise PartitionsError(f"{video_id!r} is not an inbox video with a question: pick a video of {folder}")
    key = video_partition_key(params.data_dir, video_id)
    if not instance.has_dynamic_partition(INBOX_VIDEOS, key):
        instance.add_dynamic_partitions(INBOX_VIDEOS, [key])
    return key


def ensure_empty_output(project: ProjectResource) -> None:
    """The predictions folder, created when missing: an empty inbox is an empty output, not a missing one."""
    project.layout().predictions.mkdir(parents=True, exist_ok=True)
