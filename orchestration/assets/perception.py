"""``vlm_descriptions``: what the frozen VLM says about each question's key frames."""

from collections import Counter

import dagster as dg

from embodied_r.data.ingest import read_videos
from embodied_r.models.pointers import require_upstream
from embodied_r.perception.lm_prompt import build_messages
from embodied_r.perception.stage import DROPPED, FAILURES, SAMPLES, describe_dataset
from embodied_r.validation.answer_checks import invalid_answers_note
from orchestration.assets import code_version
from orchestration.assets.data import raw_videos
from orchestration.assets.keyframes import keyframes
from orchestration.resources import ProjectResource
from orchestration.stages import library_stage


def _example_prompt(sample) -> str:
    """The LM's input for one sample, as markdown (what the reasoning model will read)."""
    parts = [f"**{m['role']}**\n\n```text\n{m['content']}\n```" for m in build_messages(sample)]
    return f"Question `{sample.question_id}` (answer {sample.answer})\n\n" + "\n\n".join(parts)


def _check_dropped_videos(context, dropped: list[dict], n_videos: int, params, layout) -> None:
    """Report the videos whose key frames failed; fail beyond ``keyframes.max_failed_share`` of all videos."""
    by_video: dict[str, dict] = {}
    for entry in dropped:
        by_video.setdefault(entry["video_id"], entry)
    for video_id, entry in sorted(by_video.items())[:20]:
        context.log.warning("left out the questions of %s (%s): %s", video_id, entry["reason"], entry["error"])
    share = len(by_video) / n_videos if n_videos else 0.0
    if by_video and share > params.keyframes.max_failed_share:
        first = next(iter(sorted(by_video.items())))[1]
        raise dg.Failure(
            description=(
                f"key frames failed for {len(by_video)} of {n_videos} videos ({len(dropped)} questions; allowed "
                f"share keyframes.max_failed_share={params.keyframes.max_failed_share}); see "
                f"{layout.descriptions / DROPPED}. First: {first['video_id']}: {first['error']}"
            ),
            metadata={"dropped": dg.MetadataValue.json(sorted(by_video.values(), key=lambda d: d["video_id"])[:50])},
        )


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
    _check_dropped_videos(context, outcome.dropped, len(read_videos(layout.raw)), params, layout)
    stats = outcome.stats
    total = len(outcome.samples) + len(outcome.failures)
    for failure in outcome.failures[:20]:
        context.log.warning("not described: %s (%s): %s", failure["question_id"], failure["video_id"], failure["error"])
    share = len(outcome.failures) / total if total else 0.0
    if outcome.failures and share > params.perception.max_failed_share:
        raise dg.Failure(
            description=(
                f"{len(outcome.failures)} of {total} questions could not be described "
                f"(allowed share perception.max_failed_share={params.perception.max_failed_share}); "
                f"see {layout.descriptions / FAILURES}. Finished answers are cached: rerun to retry the rest."
                + (f" {note}" if (note := invalid_answers_note(outcome.invalid_answers)) else "")
            ),
            metadata={"failures": dg.MetadataValue.json(outcome.failures[:50])},
        )
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
