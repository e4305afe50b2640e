"""``vlm_descriptions``: what the frozen VLM says about each question's key frames."""

from collections import Counter

import dagster as dg

from embodied_r.data.ingest import read_videos
from embodied_r.models.pointers import require_upstream
from embodied_r.perception.lm_prompt import build_messages
from embodied_r.perception.stage import SAMPLES, describe_dataset, dropped_videos, too_many_dropped, too_many_failures
from orchestration.assets import code_version
from orchestration.assets.data import raw_videos
from orchestration.assets.keyframes import keyframes
from orchestration.resources import ProjectResource
from orchestration.stages import library_stage


def _example_prompt(sample) -> str:
    """The LM's input for one sample, as markdown (what the reasoning model will read)."""
    parts = [f"**{m['role']}**\n\n```text\n{m['content']}\n```" for m in build_messages(sample)]
    return f"Question `{sample.question_id}` (answer {sample.answer})\n\n" + "\n\n".join(parts)


@dg.asset(
    group_name="perception",
    kinds={"python"},
    deps=[raw_videos, keyframes],
    code_version=code_version("vlm_descriptions"),
)
def vlm_descriptions(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    """Question-conditioned descriptions of every key frame (reference §2), through a resumable cache.

    Backend (oracle / openai / transformers) and mode (per question, as in the paper, or per video)
    come from ``perception`` in params. A question whose frames could not all be described is
    recorded in ``failures.jsonl`` and retried on the next run; finished answers are never lost. The
    questions of a video whose key frames failed are left out and listed in ``dropped.jsonl``; the step
    fails when more than ``keyframes.max_failed_share`` of the videos are dropped that way.
    """
    params = project.load_params()
    layout = project.layout(params)
    with library_stage(None):  # a missing input fails the step with its fix (this stage logs through context.log)
        require_upstream(layout.records, "raw_videos")
    outcome = describe_dataset(params, layout)
    n_videos = len(read_videos(layout.raw))
    for video_id, entry in list(dropped_videos(outcome).items())[:20]:
        context.log.warning("left out the questions of %s (%s): %s", video_id, entry["reason"], entry["error"])
    if message := too_many_dropped(outcome, n_videos, params, layout):
        first_dropped = list(dropped_videos(outcome).values())[:50]
        raise dg.Failure(description=message, metadata={"dropped": dg.MetadataValue.json(first_dropped)})
    for failure in outcome.failures[:20]:
        context.log.warning("not described: %s (%s): %s", failure["question_id"], failure["video_id"], failure["error"])
    if message := too_many_failures(outcome, params, layout):
        raise dg.Failure(description=message, metadata={"failures": dg.MetadataValue.json(outcome.failures[:50])})
    stats = outcome.stats
    samples = sorted(outcome.samples, key=lambda s: s.question_id)
    return dg.MaterializeResult(
        metadata={
            "samples": len(samples),
            "dagster/row_count": len(samples),
            "failures": len(outcome.failures),
            "dropped_questions": len(outcome.dropped),
            "dropped_videos": len({d["video_id"] for d in outcome.dropped}),
            "backend_calls": stats.get("calls", 0),
            "cache_hits": stats.get("cache_hits", 0),
            "reasked_answers": stats.get("reasked", 0),
            "invalid_vlm_answers": len(outcome.invalid_answers),
            "prompt_tokens": stats.get("prompt_tokens", 0),
            "completion_tokens": stats.get("completion_tokens", 0),
            "backend": params.perception.backend,
            "model": params.perception.model,
            "mode": params.perception.mode,
            "samples_per_category": dg.MetadataValue.json(dict(sorted(Counter(s.category for s in samples).items()))),
            "example_lm_input": dg.MetadataValue.md(_example_prompt(samples[0]) if samples else "*no samples*"),
            "path": dg.MetadataValue.path(str(layout.descriptions / SAMPLES)),
        }
    )
