"""GRPO training of the reasoning LM (reference §5), read top to bottom like open-r1's ``grpo.py``.

:func:`train_grpo`: seed → resume point → rows → model and tokenizer → reward functions with the schedule's first
weights → the trainer the config asks for → callbacks (the weight schedule, MLflow) → train → save
``output_dir/final`` → :class:`TrainOutcome`.

The trainer is the paper's, TRL's ``GRPOTrainer`` with exact zero advantages
(:class:`~embodied_r.training.trainer.PaperGRPOTrainer`); :func:`grpo_trainer_class` adds the CPU components the
config turns on (shared-prompt passes, flat-batch skipping, dynamic sampling), each a subclass in its own module
with its measured effect. MLflow: the caller's run only (:mod:`embodied_r.training.mlflow_logging`).

Think prefill (``cfg.think_prefill``): :mod:`embodied_r.training.think_prefill`.

Precision. Weights are loaded in fp32; ``bf16`` means bf16 autocast (or DeepSpeed's bf16 engine, which keeps
fp32 master weights). Pure bf16 weights would round away most AdamW updates at the paper's lr of 5e-7.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback, set_seed
from transformers.integrations import MLflowCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import TrainerState

from embodied_r.rewards.schedule import WeightSchedule, weights_for
from embodied_r.training.checkpoints import CompleteCheckpointCallback, last_complete_checkpoint, run_lock
from embodied_r.training.config import THINK_PREFILL, GrpoTrainingConfig, resolve_bf16
from embodied_r.training.mlflow_logging import CompletionTableCallback, mlflow_run_env, release_mlflow_callback
from embodied_r.training.progress import use_quiet_progress
from embodied_r.training.schedule import RewardScheduleCallback
from embodied_r.training.think_prefill import trl_reward_func, with_think_prefill

if TYPE_CHECKING:
    from embodied_r.training.trainer import PaperGRPOTrainer

log = logging.getLogger(__name__)

RewardFunc = Callable[..., list[float | None]]

#: Dataset columns the rewards need; the other TrainingRow columns are kept too and reach them as kwargs.
REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "solution")
#: Metrics of the last logged step that :class:`TrainOutcome` reports.
OUTCOME_METRICS: tuple[str, ...] = ("reward", "reward_std", "kl", "completions/mean_length", "entropy")
OUTCOME_PREFIXES: tuple[str, ...] = ("rewards/", "schedule/", "dynamic_sampling/")


class TrainOutcome(BaseModel):
    """What one :func:`train_grpo` call did."""

    model_config = ConfigDict(frozen=True)

    final_model_path: str
    global_step: int
    steps_this_run: int
    resumed_from: str | None
    train_runtime_s: float
    seconds_per_step: float
    median_step_time_s: float | None
    world_size: int
    reward_names: list[str]
    final_weights: list[float]
    metrics: dict[str, float]


def train_grpo(
    model_path: str | Path,
    train_rows_path: str | Path,
    output_dir: str | Path,
    cfg: GrpoTrainingConfig,
    reward_funcs: Sequence[RewardFunc],
    reward_names: Sequence[str],
    schedule: WeightSchedule,
    *,
    eval_rows_path: str | Path | None = None,
    mlflow_run_id: str | None = None,
    resume: bool = True,
    tokenizer_path: str | Path | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainOutcome:
    """Train the LM at ``model_path`` with GRPO on the TrainingRow JSONL at ``train_rows_path``.

    Args:
        model_path: A local Hugging Face model folder (nothing is fetched from a hub).
        train_rows_path: JSONL of :class:`embodied_r.training.rows.TrainingRow`.
        output_dir: Checkpoints (``checkpoint-<step>``), state and metrics; the model ends in ``output_dir/final``.
        cfg: Hyper-parameters.
        reward_funcs: TRL reward functions, ``fn(completions, solution, **columns) -> list[float | None]``.
        reward_names: Their names, from ``("format", "accuracy", "consistency")`` (TRL logs ``rewards/<name>/mean``).
        schedule: Gives the weights: ``schedule.weights_at(epoch=, step_fraction=) -> (ω_f, ω_a, ω_c)``.
        eval_rows_path: Optional JSONL of evaluation rows (used every ``cfg.eval_steps`` steps).
        mlflow_run_id: Log into this existing MLflow run (:mod:`embodied_r.training.mlflow_logging`); None =
            no MLflow.
        resume: Continue from the last complete ``checkpoint-*`` in ``output_dir`` when there is one (a checkpoint
            a kill left half-written is skipped, with a warning: :mod:`embodied_r.training.checkpoints`).
        tokenizer_path: Tokenizer folder when it is not ``model_path``.
        callbacks: Extra ``TrainerCallback``s (progress reporting, timing), added after the project's own.

    A single process holds ``output_dir``'s writer lock while it trains (a second writer is refused:
    :func:`~embodied_r.training.checkpoints.run_lock`); the processes of a ``torchrun`` / ``accelerate`` launch
    leave that to whoever launched them (``LOCAL_RANK`` is set), as the ``grpo_lm`` asset does.
    """
    if len(reward_funcs) != len(reward_names):
        raise ValueError(f"{len(reward_funcs)} reward functions but {len(reward_names)} names")
    output_dir = Path(output_dir)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    # One writer per output_dir; a torchrun / accelerate launch (LOCAL_RANK set) leaves that to its launcher.
    writer = nullcontext() if "LOCAL_RANK" in os.environ else run_lock(output_dir, "GRPO training")
    with writer:
        set_seed(cfg.seed)

        # Resume from the last complete checkpoint, if any (half-written ones are skipped, with a warning).
        last_checkpoint = last_complete_checkpoint(output_dir) if resume else None
        if last_checkpoint is not None:
            log.info("resuming from %s", last_checkpoint)
        start_step = _checkpoint_step(last_checkpoint)
        # A run killed after its last checkpoint: nothing left to train (transformers would take one more step).
        complete = last_checkpoint is not None and cfg.max_steps is not None and start_step >= cfg.max_steps

        # Data.
        train_dataset = load_rows(train_rows_path)
        eval_dataset = load_rows(eval_rows_path) if eval_rows_path is not None else None

        # Model and tokenizer (local folders only).
        tokenizer = load_tokenizer(tokenizer_path or model_path, cfg)
        model = AutoModelForCausalLM.from_pretrained(
            str(last_checkpoint if complete else model_path),
            dtype=torch.float32,
            trust_remote_code=cfg.trust_remote_code,
            local_files_only=True,
        )

        # Rewards, named as the schedule knows them, with their weights at step 0.
        prefix = THINK_PREFILL if cfg.think_prefill else ""
        funcs = [trl_reward_func(f, n, prefix) for f, n in zip(reward_funcs, reward_names, strict=True)]
        initial_weights = weights_for(schedule, reward_names, 0.0, 0.0)

        # The trainer: the paper's, with the components the config turns on.
        args = grpo_args(
            cfg, output_dir, world_size=world_size, reward_weights=initial_weights, has_eval=eval_dataset is not None
        )
        trainer_class = grpo_trainer_class(cfg)
        log.info(
            "GRPO (%s): %d rows, %d prompts × %d generations per step (%d per device × %d accumulation × %d "
            "processes), bf16=%s, %s",
            trainer_class.__name__,
            len(train_dataset),
            cfg.prompts_per_step,
            cfg.num_generations,
            args.per_device_train_batch_size,
            args.gradient_accumulation_steps,
            world_size,
            args.bf16,
            run_length(cfg, len(train_dataset)),
        )
        with mlflow_run_env(mlflow_run_id):
            trainer = trainer_class(
                model=model,
                processing_class=tokenizer,
                reward_funcs=funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
            )
            if trainer.args.world_size != world_size:
                raise RuntimeError(
                    f"WORLD_SIZE says {world_size} processes but the trainer runs {trainer.args.world_size}"
                )
            use_quiet_progress(trainer, "GRPO")
            trainer.add_callback(CompleteCheckpointCallback(cfg.save_total_limit))
            schedule_callback = RewardScheduleCallback(trainer, schedule, reward_names)
            trainer.add_callback(schedule_callback)
            if mlflow_run_id is not None:
                # Added here rather than through report_to="mlflow": with that, TRL also writes a timing metric per
                # profiled call straight to MLflow (~8 synchronous writes a step, +~50 ms a step on sqlite).
                trainer.add_callback(MLflowCallback())
                if cfg.log_completions_n > 0:
                    trainer.add_callback(CompletionTableCallback(trainer, mlflow_run_id, cfg.log_completions_n, prefix))
            for callback in callbacks:
                trainer.add_callback(callback)

            # Train.
            if complete:
                log.info("%s already reached max_steps=%d: nothing left to train", last_checkpoint, cfg.max_steps)
                trainer.state = TrainerState.load_from_json(str(Path(last_checkpoint) / TRAINER_STATE_NAME))
                schedule_callback.on_step_begin(trainer.args, trainer.state, trainer.control)
                release_mlflow_callback(trainer, failed=False)
                metrics: dict[str, Any] = {}
            else:
                failed = True
                try:
                    result = trainer.train(resume_from_checkpoint=last_checkpoint)
                    failed = False
                finally:
                    release_mlflow_callback(trainer, failed=failed)
                metrics = dict(result.metrics)

        # Save the model, the tokenizer, metrics and state.
        final = output_dir / "final"
        trainer.save_model(str(final))
        log.info("train metrics: %s", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        if trainer.is_world_process_zero():
            record = {"config": cfg.model_dump(), "reward_names": list(reward_names), "think_prefill": prefix or None}
            (final / "grpo_training.json").write_text(json.dumps(record, indent=2, sort_keys=True))
        return _outcome(trainer, final, start_step, last_checkpoint, metrics, reward_names)


# ---------------------------------------------------------------------------------------------------------------------
# Steps of train_grpo
# ---------------------------------------------------------------------------------------------------------------------


def load_rows(path: str | Path) -> Any:
    """TrainingRow JSONL as a ``datasets.Dataset`` with every column kept (rewards get them as kwargs)."""
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=str(path), split="train")
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{path}: rows lack the columns {missing}")
    return dataset


def load_tokenizer(path: str | Path, cfg: GrpoTrainingConfig) -> PreTrainedTokenizerBase:
    """The tokenizer from a local folder, with a pad token and (optionally) the ``<think>`` prefill."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.trust_remote_code, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.think_prefill:
        tokenizer.chat_template = with_think_prefill(tokenizer.chat_template)
    return tokenizer


def run_length(cfg: GrpoTrainingConfig, rows: int) -> str:
    """The run's length in the unit that decides it: ``max_steps``, when set, overrides ``epochs`` (as in TRL)."""
    if cfg.max_steps is not None:
        epochs = cfg.max_steps * cfg.prompts_per_step / max(rows, 1)
        return f"max_steps={cfg.max_steps} ({epochs:.2f} epochs of {rows} rows; overrides epochs={cfg.epochs:g})"
    return f"epochs={cfg.epochs:g} (≈ {math.ceil(rows / cfg.prompts_per_step * cfg.epochs)} steps)"


def grpo_args(
    cfg: GrpoTrainingConfig,
    output_dir: Path,
    *,
    world_size: int,
    reward_weights: list[float],
    has_eval: bool,
) -> Any:
    """TRL's ``GRPOConfig`` for ``cfg`` (never pushes to a hub; reports to no tracker by itself)."""
    from trl import GRPOConfig

    per_device, accumulation = cfg.batch_geometry(world_size)
    evaluate = has_eval and cfg.eval_steps is not None
    return GRPOConfig(
        output_dir=str(output_dir),
        # The paper's hyper-parameters.
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # < 1: a fraction of the steps (transformers 5)
        num_generations=cfg.num_generations,
        beta=cfg.beta,
        temperature=cfg.temperature,
        max_completion_length=cfg.max_completion_length,
        num_train_epochs=cfg.epochs,
        loss_type=cfg.loss_type,
        entropy_coef=cfg.entropy_coef,
        top_entropy_quantile=cfg.top_entropy_quantile,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        reward_weights=reward_weights,
        # Explicit on every device: TRL turns bf16 and gradient checkpointing on by default.
        bf16=resolve_bf16(cfg.precision),
        fp16=False,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        # Run control.
        max_steps=cfg.max_steps or -1,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=None,  # rotated by CompleteCheckpointCallback, after the new checkpoint is marked complete
        eval_strategy="steps" if evaluate else "no",
        eval_steps=cfg.eval_steps if evaluate else None,
        per_device_eval_batch_size=cfg.num_generations,
        trust_remote_code=cfg.trust_remote_code,
        # Generation backend.
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        vllm_server_base_url=cfg.vllm_server_base_url,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        # Tracking: MLflow only, and only into the caller's run; completions go to MLflow via our callback.
        report_to="none",  # MLflow: train_grpo adds transformers' MLflowCallback itself (see there)
        log_completions=False,
        push_to_hub=False,
        dataloader_num_workers=0,
        # Without a GPU, say so: accelerate only sets up multi-process CPU training (gloo) with cpu=True.
        use_cpu=not torch.cuda.is_available(),
    )


def grpo_trainer_class(cfg: GrpoTrainingConfig) -> type[PaperGRPOTrainer]:
    """The trainer class for ``cfg``: the paper's trainer with the components ``cfg`` turns on.

    Each component is a subclass of :class:`~embodied_r.training.trainer.PaperGRPOTrainer` overriding one step;
    they compose by multiple inheritance (a redraw goes through the shared-prompt passes, a flat batch is skipped
    whoever generated it). With none on, the paper's trainer itself.

    >>> grpo_trainer_class(GrpoTrainingConfig(shared_prompt=False, skip_flat_batches=False)).__name__
    'PaperGRPOTrainer'
    >>> cls = grpo_trainer_class(GrpoTrainingConfig(dynamic_sampling=2))
    >>> cls.__name__, cls.dynamic_sampling_rounds
    ('DynamicSamplingSkipFlatBatchesSharedPromptGRPOTrainer', 2)
    """
    # Imported here, as TRL in grpo_args: importing this module does not load TRL.
    from embodied_r.training.dynamic_sampling import DynamicSamplingGRPOTrainer
    from embodied_r.training.flat_batches import SkipFlatBatchesGRPOTrainer
    from embodied_r.training.shared_prompt import SharedPromptGRPOTrainer
    from embodied_r.training.trainer import PaperGRPOTrainer

    components: list[type[PaperGRPOTrainer]] = []
    if cfg.dynamic_sampling:
        components.append(DynamicSamplingGRPOTrainer)
    if cfg.skip_flat_batches:
        components.append(SkipFlatBatchesGRPOTrainer)
    if cfg.shared_prompt:
        components.append(SharedPromptGRPOTrainer)
    if not components:
        return PaperGRPOTrainer
    name = "".join(c.__name__.removesuffix("GRPOTrainer") for c in components) + "GRPOTrainer"
    return _compose(name, tuple(components), cfg.dynamic_sampling)


@functools.cache
def _compose(name: str, components: tuple[type, ...], rounds: int) -> type[PaperGRPOTrainer]:
    # Cached: the same config gets the same class (two calls, one class; resumes and tests compare them).
    return type(name, components, {"dynamic_sampling_rounds": rounds, "__module__": __name__})


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def _checkpoint_step(checkpoint: str | None) -> int:
    if checkpoint is None:
        return 0
    state = Path(checkpoint) / "trainer_state.json"
    return int(json.loads(state.read_text())["global_step"]) if state.is_file() else 0


def run_means(history: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Whole-run means of the signal diagnostics (``run/…``): whether GRPO had anything to learn from.

    ``run/zero_std_trained`` is the share of trained groups whose rewards were all equal (no gradient from the
    advantage): ``dynamic_sampling/zero_std_trained`` when dynamic sampling ran, else ``frac_reward_zero_std``;
    ``run/draws_per_step`` the scoring rounds a step took (dynamic sampling only).

    >>> run_means([{"frac_reward_zero_std": 1.0}, {"frac_reward_zero_std": 0.5}, {"loss": 0.1}])
    {'run/zero_std_trained': 0.75}
    """

    def mean(key: str) -> float | None:
        values = [float(e[key]) for e in history if e.get(key) is not None]
        return sum(values) / len(values) if values else None

    out = {}
    trained = mean("dynamic_sampling/zero_std_trained")
    trained = trained if trained is not None else mean("frac_reward_zero_std")
    if trained is not None:
        out["run/zero_std_trained"] = trained
    draws = mean("dynamic_sampling/draws")
    if draws is not None:
        out["run/draws_per_step"] = draws
    return out


def _outcome(
    trainer: Any,
    final: Path,
    start_step: int,
    last_checkpoint: str | None,
    metrics: dict[str, Any],
    reward_names: Sequence[str],
) -> TrainOutcome:
    history = trainer.state.log_history
    last = next((entry for entry in reversed(history) if "reward" in entry), {})
    reported = {
        key: float(value)
        for key, value in last.items()
        if value is not None and (key in OUTCOME_METRICS or key.startswith(OUTCOME_PREFIXES))
    }
    reported.update(run_means(history))  # the whole training, resumed parts included
    step_times = [entry["step_time"] for entry in history if entry.get("step_time") is not None]
    steps = trainer.state.global_step - start_step
    runtime = float(metrics.get("train_runtime", 0.0))
    return TrainOutcome(
        final_model_path=str(final),
        global_step=trainer.state.global_step,
        steps_this_run=steps,
        resumed_from=last_checkpoint,
        train_runtime_s=runtime,
        seconds_per_step=runtime / steps if steps else 0.0,
        median_step_time_s=statistics.median(step_times) if step_times else None,
        world_size=trainer.args.world_size,
        reward_names=list(reward_names),
        final_weights=[float(w) for w in trainer.reward_weights.tolist()],
        metrics=reported,
    )


__all__ = [
    "TrainOutcome",
    "grpo_args",
    "grpo_trainer_class",
    "load_rows",
    "load_tokenizer",
    "run_length",
    "train_grpo",
]
