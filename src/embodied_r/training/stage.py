"""The reasoning LM's stages over a project (the library side of ``base_lm``, ``training_set``, ``warm_lm``,
``sft_lm`` and ``grpo_lm``): each takes the params and the layout, reads its inputs, writes its outputs and
returns what it did.

Every model a stage produces is installed in ``data/models/<stage>/`` (a DVC output, pushed and pulled with the
data: :mod:`embodied_r.models.folders`) and its pointer names it relative to the project root. A training is
identified by its key (its data, its starting model and its settings): its checkpoints live in ``.cache/``, in a
folder named by the key, one writer at a time (the folder's writer lock, held from training to registration), and
a rerun of the same key resumes there. Each training gets a new MLflow run; a run of the same key that a killed
process left ``RUNNING`` is closed and its curve continued in the new one
(:func:`embodied_r.tracking.adopt_orphan_runs`). The orchestration passes in how to open a run
(:class:`RunHooks`) and what else to close (the Dagster runs of killed processes).

The trainers (torch, TRL) are imported inside the functions that train.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embodied_r.config import Params
from embodied_r.data.records import dumps_canonical, write_json
from embodied_r.hashing import short_hash
from embodied_r.layout import Layout
from embodied_r.models.folders import install_disabled, install_model
from embodied_r.models.pointers import (
    BASE_LM_POINTER,
    GRPO_POINTER,
    SFT_LM_POINTER,
    WARM_LM_POINTER,
    MissingUpstreamError,
    project_path,
    read_base_lm_path,
    read_pointer,
    resolve_model_path,
    write_pointer,
)
from embodied_r.tracking import adopt_orphan_runs, create_run
from embodied_r.training.checkpoints import checkpoint_step, last_complete_checkpoint, run_lock
from embodied_r.validation.recorded import CHECKS_FILE, failed_checks

if TYPE_CHECKING:
    from embodied_r.training.dataset import TrainingSetBuild

log = logging.getLogger(__name__)

#: Written next to a trained supervised stage's checkpoints: its MLflow run, training outcome and check (for reuse).
STAGE_RECORD = "stage.json"
#: Validation questions decoded after a supervised training to show the output contract holds (format, letters).
FORMAT_CHECK_ROWS = 16

#: ``(orphans, resume step, run id)``: called with the runs a killed attempt left open, once MLflow closed them.
OnOrphans = Callable[[list[dict[str, str]], int, str], None]


@dataclass(frozen=True)
class RunHooks:
    """What the orchestrator adds to a training stage's MLflow run: tags, who else hears of killed attempts (their
    orchestrator runs are its to close), and the MLflow UI the run's link points to."""

    tags: dict[str, str] = field(default_factory=dict)  # e.g. the orchestrator's run id (``dagster.run_id``)
    on_orphans: OnOrphans | None = None
    mlflow_ui: str = "http://127.0.0.1:5000"

    def create_run(self, params: Params, layout: Layout, run_name: str, tags: dict[str, str], settings: dict):
        """A new run in the project's experiment with ``tags`` and these hooks' tags; (run id, UI URL)."""
        return create_run(params.tracking, layout.root, run_name, {**tags, **self.tags}, settings, self.mlflow_ui)


def _adopt_killed_runs(hooks: RunHooks, run_id: str, match_tags: dict[str, str], output_dir: Path) -> None:
    """Close what a killed attempt of the same training left open (call it holding the writer lock)."""
    resume_step = checkpoint_step(last_complete_checkpoint(output_dir))
    orphans = adopt_orphan_runs(run_id, match_tags, resume_step)
    if hooks.on_orphans is not None and orphans:
        hooks.on_orphans(orphans, resume_step, run_id)
    if orphans:
        log.warning(
            "resumed a killed training: MLflow run(s) %s marked KILLED; their curve up to step %d continues in %s",
            ", ".join(o["run_id"] for o in orphans),
            resume_step,
            run_id,
        )


# ---------------------------------------------------------------------------------------------------------------------
# base_lm and training_set
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseLMStage:
    """What :func:`prepare_base_lm_stage` found: the prepared LM and facts about its folder."""

    lm: Any  # embodied_r.models.BaseLM
    summary: dict[str, Any]
    path: Path  # data/models/base_lm: the copy downstream stages read (a DVC output)


def prepare_base_lm_stage(params: Params, layout: Layout) -> BaseLMStage:
    """Resolve ``lm.base`` to a local, trainable Hugging Face folder, copy it into ``data/models/base_lm/`` (so a
    machine that pulls the lineage needs no model cache) and write the ``base_lm.json`` pointer."""
    from embodied_r.models import model_summary, prepare_base_lm

    trust = params.lm.trust_remote_code
    lm = prepare_base_lm(params.lm.base, Path(params.lm.cache_dir).expanduser(), trust_remote_code=trust)
    summary = model_summary(lm.path, trust_remote_code=trust)
    folder = install_model(lm.path, layout, "base_lm")
    pointer = {
        "source": lm.model_id,
        "path": project_path(layout, folder),
        "sha256": lm.source_sha256,
        "revision": lm.revision,
    }
    write_pointer(layout.models, BASE_LM_POINTER, pointer)
    log.info("base LM %s in %s (%s parameters)", lm.model_id, pointer["path"], f"{lm.parameters:,}")
    return BaseLMStage(lm=lm, summary=summary, path=folder)


def training_set_stage(params: Params, layout: Layout) -> TrainingSetBuild:
    """Build and write the train/val/test rows from the described samples (``training_set``).

    Refuses (:class:`~embodied_r.training.dataset.FailedChecksError`) when a blocking data check of the descriptions
    failed; the difficulty filter, when on, samples the base LM. Returns the
    :class:`~embodied_r.training.dataset.TrainingSetBuild`.
    """
    from transformers import AutoTokenizer

    from embodied_r.perception.stage import SAMPLES, read_samples
    from embodied_r.training.dataset import build_training_set, hf_answer_fn, write_training_set

    checks_path = layout.descriptions / CHECKS_FILE
    if not checks_path.is_file():
        raise MissingUpstreamError(f"{checks_path} is missing: the data checks of vlm_descriptions have not run")
    failed = failed_checks(layout.descriptions)
    samples = read_samples(layout.descriptions / SAMPLES)
    lm_path = read_base_lm_path(layout)
    tokenizer = AutoTokenizer.from_pretrained(lm_path, trust_remote_code=params.lm.trust_remote_code)
    cfg = params.training_set
    answer_fn = None
    if cfg.difficulty_filter:  # off by default: the paper has no difficulty filter
        answer_fn = hf_answer_fn(
            lm_path, temperature=cfg.difficulty_temperature, max_new_tokens=cfg.max_completion_tokens,
            answer_mode=params.rewards.accuracy_mode, precision=params.grpo.precision,
            trust_remote_code=params.lm.trust_remote_code,
        )  # fmt: skip
    build = build_training_set(samples, tokenizer, cfg, failed_checks=failed, answer_fn=answer_fn)
    write_training_set(build, layout.training_set)
    log.info("training set: %s", {k: len(v) for k, v in build.rows_by_split.items()})
    return build


# ---------------------------------------------------------------------------------------------------------------------
# warm_lm and sft_lm: supervised trainings
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupervisedStage:
    """A supervised stage's pointer and what it did; ``metadata`` holds plain values (MLflow URL, path, loss...)."""

    pointer: dict[str, Any]
    metadata: dict[str, Any]
    trained: bool  # False: switched off (the pointer passes the base LM through, or names no model)


def train_warm_start(params: Params, layout: Layout, hooks: RunHooks) -> SupervisedStage:
    """``warm_lm``: the base LM after the optional format cold start (``cold_start.*``), or the base LM itself."""
    from embodied_r.training.supervised import cold_start_examples

    cfg = params.cold_start
    if not cfg.enabled:
        base = read_pointer(layout.models, BASE_LM_POINTER)["path"]  # as base_lm wrote it: relative to the root
        install_disabled(layout, "warm_lm", f"cold_start.enabled is false: GRPO starts from the base LM ({base})")
        pointer = {"enabled": False, "path": base, "base": base}
        write_pointer(layout.models, WARM_LM_POINTER, pointer)
        return SupervisedStage(pointer, {"cold_start": "disabled: GRPO starts from the base LM", "path": base}, False)
    stage = _train_supervised_stage(
        params, layout, hooks, "cold_start", cfg, lambda rows: cold_start_examples(rows, cfg), "warm_lm"
    )
    write_pointer(layout.models, WARM_LM_POINTER, stage.pointer)
    return stage


def train_sft(params: Params, layout: Layout, hooks: RunHooks) -> SupervisedStage:
    """``sft_lm``: the SFT baseline (the paper's RQ7) on templated reasoning traces, or no model when ``sft`` is off."""
    from embodied_r.training.traces import reasoning_trace_examples

    if not params.sft.enabled:
        install_disabled(layout, "sft_lm", "sft.enabled is false: no SFT baseline")
        pointer = {"enabled": False, "path": None}
        write_pointer(layout.models, SFT_LM_POINTER, pointer)
        return SupervisedStage(pointer, {"sft": "disabled (sft.enabled: false)"}, False)
    examples_fn = lambda rows: reasoning_trace_examples(rows, params.sft.answer)  # noqa: E731
    stage = _train_supervised_stage(params, layout, hooks, "sft", params.sft, examples_fn, "sft_lm")
    write_pointer(layout.models, SFT_LM_POINTER, stage.pointer)
    return stage


def _train_supervised_stage(params, layout, hooks, stage, cfg, examples_fn, asset) -> SupervisedStage:
    """Train (or reuse) the supervised model of ``stage`` under its writer lock; install it as ``asset``'s model."""
    from embodied_r.training.dataset import read_training_rows

    train_path = layout.training_set / "train.jsonl"
    settings = {stage: cfg.model_dump(mode="json"), "lm": params.lm.model_dump(mode="json")}
    key = short_hash(train_path.read_bytes(), (layout.models / BASE_LM_POINTER).read_bytes(), dumps_canonical(settings))
    output_dir = layout.root / ".cache" / stage / key
    final = output_dir / "final"
    examples = examples_fn(read_training_rows(train_path))
    record_path = output_dir / STAGE_RECORD
    with run_lock(output_dir, f"{stage} training"):  # one writer per training key (a second one is refused)
        if final.is_dir() and record_path.is_file():
            # Same data, base model and settings: the model, its MLflow run and its check are reused as they are.
            log.info("%s %s already trained: reusing %s", stage, key, final)
            record = {**json.loads(record_path.read_text()), "reused": True}
        else:
            record = _train_and_check(params, layout, hooks, stage, cfg, examples, output_dir, settings, key)
            write_json(record_path, {k: v for k, v in record.items() if k != "reused"})
        folder = project_path(layout, install_model(final, layout, asset))
    base = read_pointer(layout.models, BASE_LM_POINTER)["path"]  # as base_lm wrote it: relative to the root
    pointer = {"enabled": True, "path": folder, "key": key, "run_id": record["run_id"], "base": base}
    metadata = {
        "mlflow_run": record["url"],
        "path": folder,
        "examples": len(examples),
        "reused": record["reused"],
        **record["outcome"],
        **record["check"],
    }
    return SupervisedStage(pointer, metadata, True)


def _train_and_check(params, layout, hooks, stage, cfg, examples, output_dir, settings, key) -> dict:
    """Train in a new MLflow run, then decode a few validation questions (format, letters used)."""
    import mlflow

    from embodied_r.evaluation.generate import evaluate_model
    from embodied_r.training.dataset import read_training_rows
    from embodied_r.training.supervised import train_supervised

    tags = {"embodied_r.stage": stage, "embodied_r.profile": params.profile, "embodied_r.training_key": key}
    run_id, url = hooks.create_run(params, layout, f"{stage}-{params.profile}", tags, settings)
    client = mlflow.MlflowClient()
    _adopt_killed_runs(hooks, run_id, {"embodied_r.stage": stage, "embodied_r.training_key": key}, output_dir)
    ev = params.evaluation
    try:
        log.info("%s: %d examples, %d steps in %s", stage, len(examples), cfg.max_steps, output_dir)
        outcome = train_supervised(
            read_base_lm_path(layout), examples, output_dir, cfg, purpose=stage, mlflow_run_id=run_id,
            trust_remote_code=params.lm.trust_remote_code,
        )  # fmt: skip
        val_rows = read_training_rows(layout.training_set / "val.jsonl")[:FORMAT_CHECK_ROWS]
        check = {}
        if val_rows:
            result = evaluate_model(
                outcome.final_model_path, val_rows, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                precision=ev.precision, bootstrap_samples=ev.bootstrap_samples, progress=False,
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


# ---------------------------------------------------------------------------------------------------------------------
# grpo_lm
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrpoStage:
    """What :func:`train_grpo_stage` did: the pointer it wrote, the MLflow run's URL, the training outcome."""

    pointer: dict[str, Any]
    url: str
    outcome: Any  # embodied_r.training.grpo.TrainOutcome (or the launched processes' equivalent)

    @property
    def metadata(self) -> dict[str, Any]:
        """Plain values for the orchestrator (``mlflow_run`` is a URL; the dicts are JSON)."""
        outcome, pointer = self.outcome, self.pointer
        return {
            "mlflow_run": self.url,
            "registered_version": f"{pointer['registered_model']} v{pointer['version']}",
            "model_uri": pointer["model_uri"],
            "path": pointer["path"],
            "global_step": outcome.global_step,
            "steps_this_run": outcome.steps_this_run,
            "resumed_from": outcome.resumed_from or "",
            "seconds_per_step": round(outcome.seconds_per_step, 3),
            "world_size": outcome.world_size,
            "final_weights": dict(zip(outcome.reward_names, outcome.final_weights, strict=True)),
            "final_metrics": outcome.metrics,
            "training_key": pointer["training_key"],
        }


def grpo_training_key(layout: Layout, settings: dict[str, Any]) -> str:
    """What identifies one GRPO training: its rows, its starting model (the ``warm_lm`` pointer) and its settings."""
    train = (layout.training_set / "train.jsonl").read_bytes()
    return short_hash(train, (layout.models / WARM_LM_POINTER).read_bytes(), dumps_canonical(settings))


def train_grpo_stage(params: Params, layout: Layout, hooks: RunHooks) -> GrpoStage:
    """``grpo_lm``: GRPO on the training split from the ``warm_lm`` model, logged, registered and pointed to.

    Checkpoints live in ``.cache/grpo/<training key>/`` (resumed from the last complete one); the writer lock is
    held from training to registration; the final model is installed in ``data/models/grpo_lm/``, registered from
    there as a new version of ``tracking.registered_model`` (:func:`register_grpo_model`) and ``grpo_lm.json``
    written.
    """
    import mlflow

    from embodied_r.rewards import build_reward_funcs
    from embodied_r.training.grpo import train_grpo
    from embodied_r.training.launch import run_launched

    train_path = layout.training_set / "train.jsonl"
    val_path = layout.training_set / "val.jsonl"
    base_path = read_base_lm_path(layout)
    warm = read_pointer(layout.models, WARM_LM_POINTER)
    model_path = str(resolve_model_path(layout, warm["path"]))
    settings = {k: params.model_dump(mode="json")[k] for k in ("grpo", "rewards", "lm", "training_set")}
    key = grpo_training_key(layout, settings)
    output_dir = layout.checkpoints / key

    with run_lock(output_dir, "grpo_lm training"):  # training to registration: one writer per training key
        tags = {
            "embodied_r.stage": "grpo_lm",
            "embodied_r.profile": params.profile,
            "embodied_r.training_key": key,
            "embodied_r.initial_model": warm["path"],  # relative to the root: the same on every machine
        }
        run_id, url = hooks.create_run(params, layout, f"grpo-{params.profile}", tags, settings)
        client = mlflow.MlflowClient()
        log.info("MLflow run %s (%s); checkpoints in %s", run_id, url, output_dir)
        # A materialization of this training killed earlier: close its runs and continue its curve in this one.
        _adopt_killed_runs(hooks, run_id, {"embodied_r.stage": "grpo_lm", "embodied_r.training_key": key}, output_dir)

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        eval_rows = val_path if params.grpo.eval_steps and val_path.stat().st_size else None
        try:
            if params.grpo.launcher == "inprocess":
                reward_funcs, reward_names = build_reward_funcs(params.rewards, policy_model_path=str(base_path))
                outcome = train_grpo(
                    model_path, train_path, output_dir, params.grpo, reward_funcs, reward_names,
                    params.rewards.schedule, eval_rows_path=eval_rows, mlflow_run_id=run_id, resume=True,
                )  # fmt: skip
            else:  # several processes (GPUs, or gloo on CPU), each running embodied_r.training.launch
                outcome = run_launched(
                    params.grpo, params.rewards, model=model_path, rows=train_path, out=output_dir,
                    eval_rows=eval_rows, judge_model=base_path, mlflow_run_id=run_id,
                    tracking_uri=mlflow.get_tracking_uri(), cwd=layout.root,
                )  # fmt: skip
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        folder = install_model(outcome.final_model_path, layout, "grpo_lm")
        model_uri, version = register_grpo_model(params, layout, run_id, registered_by="grpo_lm")
        for name, value in outcome.metrics.items():
            client.log_metric(run_id, f"final/{name}", value)
        client.set_terminated(run_id, status="FINISHED")
        pointer = {
            "path": project_path(layout, folder),
            "model_uri": model_uri,
            "registered_model": params.tracking.registered_model,
            "version": version,
            "run_id": run_id,
            "training_key": key,
        }
        write_pointer(layout.models, GRPO_POINTER, pointer)
    return GrpoStage(pointer=pointer, url=url, outcome=outcome)


def register_grpo_model(params: Params, layout: Layout, run_id: str, *, registered_by: str) -> tuple[str, str]:
    """Log ``data/models/grpo_lm/`` into MLflow run ``run_id`` and register it as a new version of
    ``tracking.registered_model``, tagged with the folder's DVC hash, its path and the git commit
    (:func:`embodied_r.models.registry.lineage_tags`); returns (model URI, version).

    ``registered_by`` names the stage that registers: ``grpo_lm`` after training, ``evaluation_results`` for a
    model DVC restored without its training running here.
    """
    import mlflow

    from embodied_r.inference.pyfunc import registration
    from embodied_r.models.folders import dvc_md5, model_folder
    from embodied_r.models.registry import MODEL_MD5_TAG, MODEL_PATH_TAG, lineage_tags, tag_version
    from embodied_r.tracking import log_and_register_lm

    folder = model_folder(layout, "grpo_lm")
    tags = lineage_tags(layout.root, folder, dvc_md5(folder), registered_by)
    model_uri, version = log_and_register_lm(
        folder, params.tracking.registered_model, run_id,
        **registration(params, layout, run_id),  # the whole chain: its settings, a request example, the model card
    )  # fmt: skip
    tag_version(mlflow.MlflowClient(), params.tracking.registered_model, version, tags)
    log.info("registered %s v%s from %s (%s)", params.tracking.registered_model, version, tags[MODEL_PATH_TAG],
             tags[MODEL_MD5_TAG])  # fmt: skip
    return model_uri, version
