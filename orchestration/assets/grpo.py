"""``grpo_lm``: the reasoning LM trained with GRPO on the paper's three rewards and weight schedule."""

import hashlib
import json
import os

import dagster as dg

from embodied_r.data.records import dumps_canonical, write_json
from embodied_r.rewards import build_reward_funcs
from embodied_r.tracking import log_and_register_lm
from embodied_r.training.checkpoints import checkpoint_step, last_complete_checkpoint
from embodied_r.training.grpo import train_grpo
from embodied_r.training.launch import run_launched
from orchestration.assets import require_upstream
from orchestration.assets.supervised import WARM_LM_POINTER, read_model_pointer, warm_lm
from orchestration.assets.training import adopt_killed_runs, base_lm, read_base_lm_path, training_set, writer_lock
from orchestration.resources import MlflowResource, ProjectResource

GRPO_POINTER = "grpo_lm.json"


def training_key(train_bytes: bytes, base_pointer: bytes, params_json: str) -> str:
    """What identifies one training: its data, its starting model and its settings (the checkpoint folder)."""
    digest = hashlib.sha256()
    for part in (train_bytes, base_pointer, params_json.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


@dg.asset(group_name="training", kinds={"pytorch", "mlflow"}, deps=[training_set, base_lm, warm_lm])
def grpo_lm(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """GRPO on the training split (TRL), rewards format / accuracy / consistency with the staged weights,
    starting from ``warm_lm`` (the base LM itself when the cold start is off); the consistency judge is a frozen
    copy of the base LM.

    One MLflow run per materialization (params, per-step metrics, sample completions); the final model is
    logged and registered as a new version of ``tracking.registered_model``. Checkpoints live in
    ``.cache/grpo/<training key>/``: an interrupted run resumes from the last complete one, closes the MLflow run
    (KILLED) and Dagster run (failed) the kill left open, and continues the curve. A second materialization of the
    same training while one runs is refused (the folder's writer lock names the holder).
    """
    import mlflow as mlflow_lib

    params = project.load_params()
    layout = project.layout(params)
    train_path = layout.training_set / "train.jsonl"
    val_path = layout.training_set / "val.jsonl"
    base_path = read_base_lm_path(layout.models)
    model_path = read_model_pointer(layout.models, WARM_LM_POINTER)["path"]
    settings = {k: params.model_dump(mode="json")[k] for k in ("grpo", "rewards", "lm", "training_set")}
    key = training_key(
        train_path.read_bytes(), (layout.models / WARM_LM_POINTER).read_bytes(), dumps_canonical(settings)
    )
    output_dir = layout.checkpoints / key

    with writer_lock(output_dir, "grpo_lm"):  # training to registration: one writer per training key
        run_id, url = mlflow.create_run(
            f"grpo-{params.profile}",
            tags={
                "embodied_r.stage": "grpo_lm",
                "embodied_r.profile": params.profile,
                "embodied_r.training_key": key,
                "embodied_r.initial_model": str(model_path),
                "dagster.run_id": context.run_id,
            },
            params=settings,
        )
        client = mlflow_lib.MlflowClient()
        context.log.info("MLflow run %s (%s); checkpoints in %s", run_id, url, output_dir)
        # A materialization of this training killed earlier: close its runs and continue its curve in this one.
        resume_step = checkpoint_step(last_complete_checkpoint(output_dir))
        adopt_killed_runs(context, run_id, {"embodied_r.stage": "grpo_lm", "embodied_r.training_key": key}, resume_step)

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        eval_rows = val_path if params.grpo.eval_steps and val_path.stat().st_size else None
        try:
            if params.grpo.launcher == "inprocess":
                reward_funcs, reward_names = build_reward_funcs(params.rewards, policy_model_path=str(base_path))
                outcome = train_grpo(
                    model_path,
                    train_path,
                    output_dir,
                    params.grpo,
                    reward_funcs,
                    reward_names,
                    params.rewards.schedule,
                    eval_rows_path=eval_rows,
                    mlflow_run_id=run_id,
                    resume=True,
                )
            else:  # several processes (GPUs, or gloo on CPU), each running embodied_r.training.launch
                outcome = run_launched(
                    params.grpo,
                    params.rewards,
                    model=model_path,
                    rows=train_path,
                    out=output_dir,
                    eval_rows=eval_rows,
                    judge_model=base_path,
                    mlflow_run_id=run_id,
                    tracking_uri=mlflow_lib.get_tracking_uri(),
                    cwd=layout.root,
                )
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        model_uri, version = log_and_register_lm(
            outcome.final_model_path, params.tracking.registered_model, run_id,
            max_new_tokens=params.grpo.max_completion_length,
        )  # fmt: skip
        for name, value in outcome.metrics.items():
            client.log_metric(run_id, f"final/{name}", value)
        client.set_terminated(run_id, status="FINISHED")
        pointer = {
            "final_model_path": str(outcome.final_model_path),
            "model_uri": model_uri,
            "registered_model": params.tracking.registered_model,
            "version": version,
            "run_id": run_id,
            "training_key": key,
        }
        write_json(layout.models / GRPO_POINTER, pointer)
        return dg.MaterializeResult(
            metadata={
                "mlflow_run": dg.MetadataValue.url(url),
                "registered_version": f"{params.tracking.registered_model} v{version}",
                "model_uri": model_uri,
                "global_step": outcome.global_step,
                "steps_this_run": outcome.steps_this_run,
                "resumed_from": outcome.resumed_from or "",
                "seconds_per_step": round(outcome.seconds_per_step, 3),
                "world_size": outcome.world_size,
                "final_weights": dg.MetadataValue.json(
                    dict(zip(outcome.reward_names, outcome.final_weights, strict=True))
                ),
                "final_metrics": dg.MetadataValue.json(outcome.metrics),
                "training_key": key,
            }
        )


def read_grpo_pointer(models_dir) -> dict:
    """The pointer ``grpo_lm`` wrote: final model path, MLflow model URI and registry version."""
    return json.loads(require_upstream(models_dir / GRPO_POINTER, "grpo_lm").read_text())
