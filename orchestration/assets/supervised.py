"""Supervised models next to GRPO: ``warm_lm`` (the format cold start GRPO starts from) and ``sft_lm`` (the SFT
baseline of the paper's RQ7). Each is optional; switched off, ``warm_lm`` passes the base LM through and
``sft_lm`` records that there is no baseline."""

import json
from pathlib import Path

import dagster as dg

from embodied_r.data.records import dumps_canonical, write_json
from embodied_r.evaluation.generate import evaluate_model
from embodied_r.hashing import short_hash
from embodied_r.training.checkpoints import checkpoint_step, last_complete_checkpoint
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.supervised import SupervisedConfig, cold_start_examples, train_supervised
from embodied_r.training.traces import reasoning_trace_examples
from orchestration.assets import require_upstream
from orchestration.assets.training import (
    BASE_LM_POINTER,
    adopt_killed_runs,
    base_lm,
    read_base_lm_path,
    training_set,
    writer_lock,
)
from orchestration.resources import MlflowResource, ProjectResource

WARM_LM_POINTER = "warm_lm.json"
SFT_LM_POINTER = "sft_lm.json"
#: Written next to a trained stage's checkpoints: its MLflow run, training outcome and check (for reuse).
STAGE_RECORD = "stage.json"
#: Validation questions decoded after training to show the output contract holds (format, letters used).
FORMAT_CHECK_ROWS = 16


def read_model_pointer(models_dir: Path, name: str) -> dict:
    """A pointer written by ``warm_lm`` / ``sft_lm`` (``{"path": ..., "enabled": ...}``)."""
    return json.loads(require_upstream(models_dir / name, name.removesuffix(".json")).read_text())


def _train(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    mlflow: MlflowResource,
    *,
    stage: str,
    cfg: SupervisedConfig,
    examples_fn,
) -> tuple[dict, dict]:
    """Train (or reuse) the supervised model of ``stage``; returns (pointer, metadata)."""
    params = project.load_params()
    layout = project.layout(params)
    base_path = read_base_lm_path(layout.models)
    train_path = layout.training_set / "train.jsonl"
    settings = {stage: cfg.model_dump(mode="json"), "lm": params.lm.model_dump(mode="json")}
    key = short_hash(train_path.read_bytes(), (layout.models / BASE_LM_POINTER).read_bytes(), dumps_canonical(settings))
    output_dir = layout.root / ".cache" / stage / key
    final = output_dir / "final"
    examples = examples_fn(read_training_rows(train_path))
    record_path = output_dir / STAGE_RECORD
    with writer_lock(output_dir, stage):  # one writer per training key (a second one is refused, naming the first)
        if final.is_dir() and record_path.is_file():
            # Same data, base model and settings: the model, its MLflow run and its check are reused as they are.
            context.log.info("%s %s already trained: reusing %s", stage, key, final)
            record = {**json.loads(record_path.read_text()), "reused": True}
        else:
            record = _train_and_check(context, project, mlflow, stage, cfg, examples, output_dir, settings, key)
            write_json(record_path, {k: v for k, v in record.items() if k != "reused"})
    pointer = {"enabled": True, "path": str(final), "key": key, "run_id": record["run_id"], "base": str(base_path)}
    metadata = {
        "mlflow_run": dg.MetadataValue.url(record["url"]),
        "path": dg.MetadataValue.path(str(final)),
        "examples": len(examples),
        "reused": record["reused"],
        **record["outcome"],
        **{k: (dg.MetadataValue.json(v) if isinstance(v, dict) else v) for k, v in record["check"].items()},
    }
    return pointer, metadata


def _train_and_check(context, project, mlflow, stage, cfg, examples, output_dir, settings, key) -> dict:
    """Train in a new MLflow run, then decode a few validation questions (format, letters used).

    A run of the same training killed earlier is closed (MLflow KILLED, Dagster failed) and its curve continued
    in the new run (:func:`~orchestration.assets.training.adopt_killed_runs`).
    """
    import mlflow as mlflow_lib

    params = project.load_params()
    layout = project.layout(params)
    run_id, url = mlflow.create_run(
        f"{stage}-{params.profile}",
        tags={
            "embodied_r.stage": stage,
            "embodied_r.profile": params.profile,
            "embodied_r.training_key": key,
            "dagster.run_id": context.run_id,
        },
        params=settings,
    )
    client = mlflow_lib.MlflowClient()
    resume_step = checkpoint_step(last_complete_checkpoint(output_dir))
    adopt_killed_runs(context, run_id, {"embodied_r.stage": stage, "embodied_r.training_key": key}, resume_step)
    try:
        context.log.info("%s: %d examples, %d steps in %s", stage, len(examples), cfg.max_steps, output_dir)
        outcome = train_supervised(
            read_base_lm_path(layout.models), examples, output_dir, cfg, purpose=stage, mlflow_run_id=run_id,
            trust_remote_code=params.lm.trust_remote_code,
        )  # fmt: skip
        val_rows = read_training_rows(layout.training_set / "val.jsonl")[:FORMAT_CHECK_ROWS]
        check = {}
        if val_rows:
            result = evaluate_model(
                outcome.final_model_path, val_rows, max_new_tokens=params.evaluation.max_new_tokens,
                batch_size=params.evaluation.batch_size, precision=params.evaluation.precision,
                bootstrap_samples=100, progress=False,
            )  # fmt: skip
            check = {
                "val_format_compliance": result.aggregate["format_compliance"],
                "val_accuracy": result.aggregate["pooled_accuracy"],
                "val_answer_shares": result.aggregate["answer_shares"] or {},  # as evaluation reports them
            }
            client.log_metric(run_id, f"{stage}/val_format_compliance", check["val_format_compliance"])
            client.log_metric(run_id, f"{stage}/val_accuracy", check["val_accuracy"])
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return {
        "run_id": run_id,
        "url": url,
        "reused": False,
        "check": check,
        "outcome": {
            "steps": outcome.global_step,
            "train_runtime_s": round(outcome.train_runtime_s, 1),
            "final_loss": outcome.final_loss,
            "resumed_from": outcome.resumed_from or "",
        },
    }


@dg.asset(group_name="training", kinds={"pytorch", "mlflow"}, deps=[training_set, base_lm])
def warm_lm(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """The model GRPO starts from: the base LM after the optional format cold start (``cold_start.*``).

    The warm-up teaches only the output contract — a neutral ``<think>`` and a uniformly random ``<answer>``
    letter (``cold_start.letters``: drawn alone, balanced within every step, or every option of a question in
    turn) — so no answer is supervised.
    Not in the paper (off in the paper profile: the base LM passes through).
    Metadata: the loss, and the format compliance and letters used on a few validation questions.
    """
    params = project.load_params()
    layout = project.layout(params)
    cfg = params.cold_start
    if not cfg.enabled:
        base = str(read_base_lm_path(layout.models))
        write_json(layout.models / WARM_LM_POINTER, {"enabled": False, "path": base, "base": base})
        return dg.MaterializeResult(metadata={"cold_start": "disabled: GRPO starts from the base LM", "path": base})
    pointer, metadata = _train(
        context, project, mlflow, stage="cold_start", cfg=cfg,
        examples_fn=lambda rows: cold_start_examples(rows, cfg),
    )  # fmt: skip
    write_json(layout.models / WARM_LM_POINTER, pointer)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name="training", kinds={"pytorch", "mlflow"}, deps=[training_set, base_lm])
def sft_lm(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    """The SFT baseline (the paper's RQ7): the base LM fine-tuned on templated reasoning traces that end in the
    correct answer (``sft.*``; off unless ``sft.enabled``). Evaluated next to the GRPO model."""
    params = project.load_params()
    layout = project.layout(params)
    if not params.sft.enabled:
        write_json(layout.models / SFT_LM_POINTER, {"enabled": False, "path": None})
        return dg.MaterializeResult(metadata={"sft": "disabled (sft.enabled: false)"})
    pointer, metadata = _train(
        context,
        project,
        mlflow,
        stage="sft",
        cfg=params.sft,
        examples_fn=lambda rows: reasoning_trace_examples(rows, params.sft.answer),
    )
    write_json(layout.models / SFT_LM_POINTER, pointer)
    return dg.MaterializeResult(metadata=metadata)
