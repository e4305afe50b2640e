"""``inbox_sensor``: new videos in the inbox become ``predictions`` partitions and runs; a new champion reruns them.

Each tick reads the inbox (``predictions.inbox``) and the version ``predictions.model`` names in the registry
(the ``champion`` alias). A video with at least one question whose file or questions changed since the last
tick — or every such video, when the champion moved — gets its partition registered (a dynamic partitions
request) and one run. The cursor keeps, per video, what was requested (file size, modification time, a digest
of its questions) and the champion version.

When the champion moves, the predictions are **re-requested**, not only marked stale: they are the champion's
answers by contract (each row names its version), a stale file would go on serving the previous model's
answers until someone noticed, and the cost is bounded by the inbox. A run key carries the video's key, the
champion version, a count of champion moves and the file's fingerprint, so a replaced file or a moved champion
runs again, and a rollback to an earlier version too (a repeated run key would be skipped by Dagster).

The sensor is ``STOPPED`` by default: once started (the UI's Automation page, or ``dagster sensor start``) every
file dropped into the folder costs a model's inference, and with a real backend the VLM's calls (money, for an
API): that is opted into, not on because the UI started. A tick without a champion or with an unreadable
questions file skips, saying why.
"""

from __future__ import annotations

import json

import dagster as dg

from embodied_r.predictions import InboxError, ModelNotFoundError, inbox_folder, read_inbox, resolve_model_version
from orchestration.assets.predictions import INBOX_VIDEOS, inbox_partitions, predictions
from orchestration.partitions import video_partition_key
from orchestration.resources import ProjectResource

#: The job the sensor's runs execute: ``predictions`` for one inbox video.
predictions_job = dg.define_asset_job("predictions_job", selection=[predictions], partitions_def=inbox_partitions)

#: The run tag naming the version the sensor saw as champion when it asked for the run.
MODEL_VERSION_TAG = "embodied_r/model_version"


@dg.sensor(job=predictions_job, default_status=dg.DefaultSensorStatus.STOPPED, minimum_interval_seconds=30)
def inbox_sensor(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult | dg.SkipReason:
    """Registers new inbox videos as ``predictions`` partitions and requests a run for each; reruns all of them
    when the champion moves (see :mod:`orchestration.sensors`)."""
    params = project.load_params()
    try:
        version = resolve_model_version(params, project.root_path)
        inbox = read_inbox(inbox_folder(params, project.root_path), params.predictions.questions_file)
    except (ModelNotFoundError, InboxError) as exc:
        return dg.SkipReason(str(exc))
    for why in inbox.ambiguous.values():
        context.log.warning("inbox: %s", why)
    state = json.loads(context.cursor) if context.cursor else {}
    generation, seen = state.get("generation", 0), state.get("videos", {})
    if state.get("version") not in (None, version):
        context.log.info("the model moved from v%s to v%s: every inbox video is answered again", state["version"],
                         version)  # fmt: skip
        generation, seen = generation + 1, {}
    current, requests = {}, []
    for video_id in sorted(inbox.videos):
        if not (inbox.questions.get(video_id) or inbox.problems.get(video_id)):
            continue  # its questions may come later: the fingerprint then changes
        fingerprint = current[video_id] = inbox.fingerprint(video_id)
        if seen.get(video_id) == fingerprint:
            continue
        key = video_partition_key(params.data_dir, video_id)
        requests.append(
            dg.RunRequest(
                run_key=f"{key}|v{version}#{generation}|{fingerprint}",
                partition_key=key,
                tags={MODEL_VERSION_TAG: version},
            )
        )
    cursor = json.dumps({"version": version, "generation": generation, "videos": current}, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason=f"no new or changed video in the inbox (model v{version})", cursor=cursor)
    new_keys = [
        r.partition_key for r in requests if not context.instance.has_dynamic_partition(INBOX_VIDEOS, r.partition_key)
    ]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[inbox_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )
