"""Benchmark: seconds per GRPO step of the project's ``train_grpo`` against a bare TRL script.

(a) project: :func:`embodied_r.training.grpo.train_grpo` — the weight-schedule callback, reward naming,
    MLflow tracking into a run (sqlite in a temporary folder) with the sampled-completions table, and the
    shared-prompt passes (:mod:`embodied_r.training.shared_prompt`, on by default);
(a') project, ``shared_prompt: false``: the same with TRL's own per-sequence passes — the project's pure overhead;
(b) bare TRL: ``GRPOTrainer`` with the same model, rows, reward functions and ``GRPOConfig`` (built by the same
    ``grpo_args``), fixed weights, no extra callbacks, no MLflow.

All run in this one process, interleaved (rotating order) for ``--rounds`` rounds of ``--steps`` steps each.
A step's time is the wall time between consecutive ``on_step_begin`` callbacks (so logging and MLflow calls
between steps count); the first step of each run (warm-up) is dropped. The report gives the median s/step of each
and the ratios: overhead (a')/(b), target ≤ 1.05; speed-up (b)/(a) from sharing the prompt; and, within (a),
the time of a step whose groups all had equal rewards (its forward and backward skipped: zero advantages) over a
step that trained.

Each ratio is also computed per round (the two variants of a round ran back to back, so a load on the shared
machine touches both) and given with a 95% bootstrap interval over the rounds: with a handful of steps a ratio's
point estimate cannot tell 1.05 from 1.19; the interval says whether it can. Use ``--rounds`` ≥ 5.

    .venv/bin/python benchmarks/grpo.py --model DIR --rows data/training_set/train.jsonl   # real prompts

    .venv/bin/python benchmarks/grpo.py                       # the tiny offline test model
    .venv/bin/python benchmarks/grpo.py --model /tmp/smol_hf  # a real local HF model folder (e.g. SmolLM2-135M)
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import TrainerCallback

from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
from embodied_r.rewards import make_accuracy_reward, make_format_reward
from embodied_r.rewards.config import RewardSchedule
from embodied_r.rewards.schedule import weights_for
from embodied_r.training.config import GrpoTrainingConfig
from embodied_r.training.grpo import grpo_args, load_rows, load_tokenizer, train_grpo

NAMES = ["format", "accuracy"]


class StepClock(TrainerCallback):
    """Wall time of each optimizer step: between consecutive ``on_step_begin`` (and the end of training)."""

    def __init__(self) -> None:
        self.marks: list[float] = []
        self.flat: dict[int, float] = {}  # step -> share of its micro-batches that skipped their passes

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.marks.append(time.perf_counter())

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "flat_batch_skipped" in logs:
            self.flat[state.global_step] = logs["flat_batch_skipped"]

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.marks.append(time.perf_counter())

    def step_times(self) -> list[float]:
        """Per-step seconds without the first (warm-up) step."""
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)][1:]

    def split_by_flatness(self) -> tuple[list[float], list[float]]:
        """(seconds of the steps whose passes were skipped, of those that trained), warm-up step dropped."""
        flat, trained = [], []
        for step, seconds in enumerate(self.step_times(), start=2):  # step 1 is the warm-up
            share = self.flat.get(step)
            if share == 1.0:
                flat.append(seconds)
            elif share == 0.0:
                trained.append(seconds)
        return flat, trained


def run_project(
    model: Path, rows: Path, out: Path, cfg: GrpoTrainingConfig, run_id: str | None, clock: StepClock | None = None
) -> list[float]:
    """(a) / (a'): the project's training (``cfg.shared_prompt`` chooses which)."""
    clock = clock or StepClock()
    funcs = [make_format_reward(), make_accuracy_reward()]
    train_grpo(
        model,
        rows,
        out,
        cfg,
        funcs,
        NAMES,
        RewardSchedule.paper(),
        mlflow_run_id=run_id,
        resume=False,
        callbacks=[clock],
    )
    return clock.step_times()


def run_bare(model: Path, rows: Path, out: Path, cfg: GrpoTrainingConfig) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM
    from trl import GRPOTrainer

    clock = StepClock()
    args = grpo_args(
        cfg,
        out,
        world_size=1,
        reward_weights=weights_for(RewardSchedule.paper(), NAMES, 0.0, 0.0),
        has_eval=False,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32, local_files_only=True),
        processing_class=load_tokenizer(model, cfg),
        reward_funcs=[make_format_reward(), make_accuracy_reward()],
        args=args,
        train_dataset=load_rows(rows),
        callbacks=[clock],
    )
    trainer.train()
    return clock.step_times()


def ratio_interval(
    numerator: list[list[float]], denominator: list[list[float]], samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Median of the per-round ratios ``median(numerator[r]) / median(denominator[r])`` and a 95% percentile
    bootstrap interval of it, resampling rounds. Rounds with no measured step are left out."""
    ratios = [
        statistics.median(a) / statistics.median(b) for a, b in zip(numerator, denominator, strict=True) if a and b
    ]
    if not ratios:
        return math.nan, math.nan, math.nan
    rng = random.Random(seed)
    boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(samples))
    return statistics.median(ratios), boot[int(0.025 * samples)], boot[int(0.975 * samples) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="local HF model folder (default: the tiny test model)")
    parser.add_argument("--rows", type=Path, help="TrainingRow JSONL (default: 16 tiny rows with short prompts)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 8 tiny, 4 real)")
    parser.add_argument("--prompts-per-step", type=int, default=None, help="default 2 tiny, 1 real")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--max-completion-length", type=int, default=None, help="default 8 tiny, 32 real")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    parser.add_argument("--no-mlflow", action="store_true", help="run the project's training without MLflow")
    parser.add_argument("--beta", type=float, default=0.001, help="KL coefficient (paper 0.001; 0: flat steps skip)")
    parser.add_argument("--project-only", action="store_true", help="time the project's shared-prompt run only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    import mlflow
    import torch

    torch.set_num_threads(args.threads)
    real = args.model is not None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or build_tiny_lm(tmp / "tiny_lm")
        rows = args.rows or write_tiny_rows(tmp / "rows.jsonl", n=16)
        cfg = GrpoTrainingConfig(
            num_generations=args.num_generations,
            prompts_per_step=args.prompts_per_step or (1 if real else 2),
            max_completion_length=args.max_completion_length or (32 if real else 8),
            max_steps=args.steps or (4 if real else 8),
            precision=args.precision,
            save_steps=10_000,
            log_completions_n=4,
            beta=args.beta,
        )
        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        client = mlflow.MlflowClient()
        experiment = client.create_experiment("bench", artifact_location=(tmp / "artifacts").as_uri())

        variants = ["project", "project, TRL passes", "bare"]
        times: dict[str, list[float]] = {name: [] for name in variants}
        per_round: dict[str, list[list[float]]] = {name: [] for name in variants}
        run_variants = variants[:1] if args.project_only else variants
        flat_times: list[float] = []  # the project's steps that skipped their passes (every advantage 0)
        trained_times: list[float] = []
        for r in range(args.rounds):
            order = run_variants[r % len(run_variants) :] + run_variants[: r % len(run_variants)]
            for name in order:
                out = tmp / f"{name.replace(', ', '-').replace(' ', '_')}-{r}"
                if name == "bare":
                    step_times = run_bare(model, rows, out, cfg)
                else:
                    run_id = None if args.no_mlflow else client.create_run(experiment).info.run_id
                    variant = cfg.model_copy(update={"shared_prompt": name == "project"})
                    clock = StepClock()
                    step_times = run_project(model, rows, out, variant, run_id, clock)
                    if name == "project":
                        flat, trained = clock.split_by_flatness()
                        flat_times += flat
                        trained_times += trained
                times[name] += step_times
                per_round[name].append(step_times)
                print(f"round {r + 1}/{args.rounds} {name}: {statistics.median(times[name]):.4f} s/step so far")
        mlflow.set_tracking_uri(None)

    project = statistics.median(times["project"])
    print(
        f"\nmodel: {args.model or 'tiny test LM'}; rows: {args.rows or 'tiny'}; {cfg.prompts_per_step} prompt(s) × "
        f"{cfg.num_generations} generations × ≤{cfg.max_completion_length} tokens per step, precision "
        f"{cfg.precision}; {sum(len(t) for t in times.values())} steps measured"
    )
    label = "train_grpo" if args.no_mlflow else "train_grpo + MLflow"
    print(f"project ({label}, shared prompt): {project:.4f} s/step (median)")
    if not args.project_only:
        trl_passes, bare = statistics.median(times["project, TRL passes"]), statistics.median(times["bare"])
        print(f"project ({label}, TRL's passes):  {trl_passes:.4f} s/step (median)")
        print(f"bare TRL GRPOTrainer:             {bare:.4f} s/step (median)")
        print(f"overhead: project with TRL's passes / bare = {trl_passes / bare:.3f} (target ≤ 1.05)")
        print(f"speed-up of the shared prompt: bare / project = {bare / project:.2f}x")
        mid, low, high = ratio_interval(per_round["project, TRL passes"], per_round["bare"])
        print(f"overhead per round: median {mid:.3f}, 95% interval [{low:.3f}, {high:.3f}] over {args.rounds} rounds")
        mid, low, high = ratio_interval(per_round["bare"], per_round["project"])
        print(f"speed-up per round: median {mid:.2f}x, 95% interval [{low:.2f}, {high:.2f}] over {args.rounds} rounds")
    if flat_times and trained_times:
        flat, trained = statistics.median(flat_times), statistics.median(trained_times)
        share = len(flat_times) / (len(flat_times) + len(trained_times))
        print(
            f"project, steps whose groups were all flat (passes skipped): {flat:.4f} s/step (median of "
            f"{len(flat_times)}); steps that trained: {trained:.4f} s/step (median of {len(trained_times)}); "
            f"flat / trained = {flat / trained:.2f} ({share:.0%} of the steps were flat)"
        )
    else:
        print(f"project: {len(flat_times)} flat and {len(trained_times)} trained steps measured (flat / trained "
              "needs both)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
