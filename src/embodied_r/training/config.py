"""Training configuration: GRPO's (the paper's hyper-parameters as defaults, plus the knobs a CPU run needs) and
the supervised stages' (the format cold start and the SFT baseline). Torch-free: ``embodied_r.config`` builds the
params schema from these classes without loading the training stack.

The defaults are the paper's GPU run (reference §5): lr 5e-7, warmup 5 %, 8 completions per prompt, KL β 0.001,
temperature 1.0, 4 prompts per optimizer step, completions ≤ 2048 tokens, bf16, 12 epochs. A CPU profile
overrides ``max_steps``, ``num_generations``, ``max_completion_length`` and ``precision``.

Batch geometry. TRL counts *completions*, not prompts: ``per_device_train_batch_size × gradient_accumulation_steps
× world_size`` completions make one optimizer step and must hold whole groups of ``num_generations``. Here the
step is stated in prompts (``prompts_per_step``, as the paper does), and :meth:`GrpoTrainingConfig.batch_geometry`
derives TRL's numbers for the world size at hand: 4 prompts × 8 completions = 32 completions per step, i.e. 4 per
GPU on 8 GPUs with no accumulation (the paper's 8× A800), or 32 micro-steps of 1 on one CPU process with
``per_device_batch_size=1``.

The prompt budget (paper: 6144 tokens) is not a trainer setting: TRL 1.16's ``GRPOConfig`` has no
``max_prompt_length``; the training set already excludes longer prompts (:mod:`embodied_r.training.dataset`).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

#: The text prefilled after the generation prompt when ``think_prefill`` is on.
THINK_PREFILL = "<think>"


#: What ``<answer>`` holds in a supervised example: the option letter (paper) or the option's text.
AnswerForm = Literal["letter", "option_text"]
#: How the cold start picks each example's (unsupervised) option: see ``ColdStartConfig.letters``.
ColdStartLetters = Literal["random", "balanced", "every_option"]

#: The neutral reasoning of the cold start: it names no object, direction or option (and is short: every token
#: of it is decoded in every GRPO completion).
NEUTRAL_THINK = "I compare the observations with the options."


class SupervisedConfig(BaseModel):
    """One supervised run (cold start or SFT baseline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Run this stage; off = the stage passes its input model through.")
    max_steps: int = Field(30, ge=1, description="Optimizer steps.")
    batch_size: int = Field(8, ge=1, description="Examples per optimizer step.")
    micro_batch_size: int = Field(4, ge=1, description="Examples per forward pass (memory bound).")
    learning_rate: float = Field(5e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="As grpo.precision.")
    seed: int = Field(0, ge=0)
    think_prefill: bool = Field(True, description="Prompts end with '<think>' (as grpo.think_prefill).")
    save_steps: int = Field(50, ge=1, description="Checkpoint every this many steps (resume after a kill).")
    answer: AnswerForm = Field(
        "letter",
        description="What <answer> holds: the option letter (paper) or the option's text (a small LM copies a "
        "text far more readily than it looks its letter up; needs rewards.accuracy_mode answer_text).",
    )

    @model_validator(mode="after")
    def _whole_micro_batches(self) -> SupervisedConfig:
        micro = min(self.micro_batch_size, self.batch_size)
        if self.batch_size % micro:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size {micro}: "
                f"use a batch_size of {micro * max(1, round(self.batch_size / micro))} or change micro_batch_size"
            )
        return self

    def batch_geometry(self) -> tuple[int, int]:
        """(per-device batch, gradient accumulation) for ``batch_size`` examples a step."""
        micro = min(self.micro_batch_size, self.batch_size)
        return micro, self.batch_size // micro

    def in_order(self) -> bool:
        """Train on the examples in the order given (else shuffled by the trainer each epoch)."""
        return False


class ColdStartConfig(SupervisedConfig):
    """The format warm-up before GRPO. Not in the paper, so off by default; the CPU profiles turn it on.

    The paper has no cold start, so its other defaults are the demo's (``params.yaml``): 16 steps of 8 examples.
    """

    max_steps: int = Field(16, ge=1, description="Optimizer steps (the format is learnt in ~12).")
    learning_rate: float = Field(8e-5, gt=0)

    think_text: str = Field(NEUTRAL_THINK, min_length=1, description="The neutral reasoning every example shows.")
    examples: int = Field(128, ge=1, description="Warm-up examples (train rows, cycled, each with a random letter).")
    letters: ColdStartLetters = Field(
        "every_option",
        description="every_option: each drawn question once with every one of its options, in a row (trained in "
        "order), so no option is preferred for any question, not only on average (GRPO's groups then hold more "
        "answers); balanced: every letter equally often in every step (examples trained in order), so the last "
        "steps cannot tilt the model to one letter; random: each example's letter drawn alone (uniformly).",
    )

    def in_order(self) -> bool:
        return self.letters != "random"


class SFTConfig(SupervisedConfig):
    """The SFT baseline (the paper's RQ7): templated reasoning traces with the correct answer."""

    max_steps: int = Field(60, ge=1)
    learning_rate: float = Field(3e-5, gt=0)


class GrpoTrainingConfig(BaseModel):
    """Hyper-parameters of one GRPO run (defaults: the paper's, reference §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- the paper's hyper-parameters -------------------------------------------------------------------------
    learning_rate: float = Field(5e-7, gt=0, description="Paper: 5e-7.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of the steps with linear warm-up. Paper: 5 %.")
    num_generations: int = Field(8, ge=2, description="Completions per prompt (G). Paper: 8.")
    beta: float = Field(0.001, ge=0, description="KL coefficient β. Paper: 0.001; 0 drops the reference model.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts. Paper: 1.0.")
    prompts_per_step: int = Field(4, ge=1, description="Prompts per optimizer step, over all processes. Paper: 4.")
    max_completion_length: int = Field(2048, ge=1, description="Completion budget in tokens. Paper: 2048.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="Paper: bf16. 'bf16' = bf16 autocast over fp32 weights (or DeepSpeed's bf16 with fp32 master "
        "weights); 'auto' = bf16 where it is faster (CUDA with bf16, or a CPU with AMX), else fp32.",
    )
    epochs: float = Field(12, gt=0, description="Passes over the training rows. Paper: 12.")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field(
        "grpo",
        description="TRL's loss aggregation. 'grpo' (per-sequence mean) is what TRL did when the paper was written; "
        "TRL 1.16 defaults to 'dapo'.",
    )

    # --- batch layout -------------------------------------------------------------------------------------------
    per_device_batch_size: int | None = Field(
        None,
        ge=1,
        description="Completions per process per micro-step; None = all of a step's completions at once "
        "(prompts_per_step × num_generations / world size, no gradient accumulation).",
    )

    # --- run control (CPU knobs) ----------------------------------------------------------------------------------
    max_steps: int | None = Field(None, ge=1, description="Cap on optimizer steps; None = run all epochs.")
    gradient_checkpointing: bool = Field(
        False, description="Trade compute for memory (TRL turns it on by default; useless on CPU, useful on GPU)."
    )
    seed: int = 42
    logging_steps: int = Field(1, ge=1, description="Log metrics (and sample completions) every this many steps.")
    save_steps: int = Field(
        20, ge=1, description="Checkpoint every this many optimizer steps (no paper value; the demo's)."
    )
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept in output_dir (oldest removed).")
    eval_steps: int | None = Field(
        None, ge=1, description="Evaluate on eval rows every this many steps (only with eval rows); None = never."
    )
    trust_remote_code: bool = False

    # --- small-model help -----------------------------------------------------------------------------------------
    think_prefill: bool = Field(
        False,
        description=f"Append {THINK_PREFILL!r} to the chat template's generation prompt so a small model starts "
        "inside its reasoning; the reward functions see the prefill prepended to each completion.",
    )

    entropy_coef: float = Field(
        0.0,
        ge=0,
        description="Not in the paper (paper: 0). An entropy bonus: the loss minus this times the mean per-token "
        "entropy of the completions (TRL's entropy_coef), so the policy stays stochastic and its groups keep "
        "reward variance.",
    )
    top_entropy_quantile: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Not in the paper (paper: 1.0 = every token). Train (and apply the entropy bonus) only on this "
        "top fraction of completion tokens by entropy (TRL's top_entropy_quantile; 0 = the highest-entropy one).",
    )

    dynamic_sampling: int = Field(
        0,
        ge=0,
        description="Not in the paper (paper: 0 = off). DAPO's dynamic sampling: after a batch is scored, redraw "
        "each group whose completions all earned the same reward (no signal) from a fresh prompt, up to this many "
        "rounds a step; still-constant groups then train as they are. Costs a generation per round for the "
        "redrawn groups only. One process, text models.",
    )

    # --- speed (same math) -----------------------------------------------------------------------------------------
    shared_prompt: bool = Field(
        True,
        description="Run each distinct prompt once per pass and share it (KV cache) by its num_generations "
        "completions, in generation and in the log-probabilities, instead of once per completion (TRL). Same loss "
        "and gradients; single-process text models only, otherwise TRL's own passes are used.",
    )
    skip_flat_batches: bool = Field(
        True,
        description="Skip the forward and backward of a training micro-batch whose advantages are all 0 (its "
        "groups earned equal rewards) and step the optimizer on zero gradients, as the passes would have: the same "
        "weights. Applies only where that loss is exactly 0 (beta 0, no entropy bonus, one process).",
    )

    # --- generation backend (GPU) ---------------------------------------------------------------------------------
    use_vllm: bool = Field(False, description="Generate with vLLM (GPU only; vllm must be installed).")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate",
        description="'colocate': vLLM shares each training GPU; 'server': a separate `trl vllm-serve` process.",
    )
    vllm_server_base_url: str | None = Field(None, description="Base URL of `trl vllm-serve` (server mode).")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="vLLM's share of GPU memory (colocate).")

    # --- processes ----------------------------------------------------------------------------------------------
    launcher: Literal["inprocess", "torchrun", "accelerate"] = Field(
        "inprocess",
        description="inprocess: train inside the Dagster run (one process); torchrun / accelerate: start "
        "nproc_per_node processes of embodied_r.training.launch (DDP; DeepSpeed via accelerate_config).",
    )
    nproc_per_node: int = Field(1, ge=1, description="Processes per node for torchrun / accelerate (one per GPU).")
    accelerate_config: str | None = Field(
        None, description="accelerate config file, e.g. configs/accelerate/zero3.yaml (launcher: accelerate)."
    )

    # --- tracking -------------------------------------------------------------------------------------------------
    log_completions_n: int = Field(
        4, ge=0, description="Completions per logging step saved to the MLflow completions table; 0 = none."
    )

    @model_validator(mode="after")
    def _dynamic_sampling_runs_in_one_process(self) -> GrpoTrainingConfig:
        # Checked here, not only by the trainer: in a launched process the trainer's error is lost in the
        # launcher's output, after the earlier stages have run.
        if self.dynamic_sampling and self.launcher != "inprocess" and self.nproc_per_node > 1:
            raise ValueError(
                f"dynamic_sampling: {self.dynamic_sampling} redraws groups in one process, but launcher "
                f"{self.launcher!r} starts {self.nproc_per_node} (each would redraw a different number of groups): "
                "set grpo.dynamic_sampling: 0, or nproc_per_node: 1"
            )
        return self

    @property
    def completions_per_step(self) -> int:
        """Completions in one optimizer step: ``prompts_per_step × num_generations``."""
        return self.prompts_per_step * self.num_generations

    def batch_geometry(self, world_size: int) -> tuple[int, int]:
        """(per_device_train_batch_size, gradient_accumulation_steps) for TRL at this world size.

        >>> GrpoTrainingConfig().batch_geometry(8)
        (4, 1)
        >>> GrpoTrainingConfig(per_device_batch_size=2).batch_geometry(2)
        (2, 8)
        """
        total = self.completions_per_step
        per_device = self.per_device_batch_size or total // world_size
        if per_device < 1 or total % (per_device * world_size) != 0:
            raise ValueError(
                f"{self.prompts_per_step} prompts × {self.num_generations} generations = {total} completions per "
                f"step cannot be split into micro-batches of {per_device} on {world_size} processes; choose "
                "prompts_per_step / per_device_batch_size so that per_device × world size divides it"
            )
        return per_device, total // (per_device * world_size)


def cpu_has_fast_bf16() -> bool:
    """Whether bf16 is faster than fp32 on this CPU: only with AMX tiles.

    AVX512-BF16 alone computes bf16 but not faster: on such a 2-core Xeon, a SmolLM2-135M forward and backward of a
    600-token sequence took 12-14 s under bf16 autocast against 9-11 s in fp32 (forward alone 3.5 s vs 2.2 s), so
    ``auto`` keeps fp32 there. With AMX, bf16 prefill was 3-4x faster than fp32.
    """
    import torch

    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_bf16(precision: Literal["auto", "bf16", "fp32"]) -> bool:
    """Whether to train with bf16 (autocast / DeepSpeed bf16) for ``precision`` on this machine."""
    if precision != "auto":
        return precision == "bf16"
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()
