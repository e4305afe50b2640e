"""How much gradient would GRPO get? Rollout groups of a model on training prompts, at one or more temperatures.

GRPO learns only from groups whose completions earn different rewards: a group where all ``G`` completions give
the same answer has zero advantages and no gradient (``frac_reward_zero_std`` in TRL's logs; the project skips
such steps' passes). Before spending an hour of CPU on a GRPO run, this script samples the groups GRPO would
sample — each training prompt's chat template (with the model's ``<think>`` prefill), ``G`` completions at
``temperature``, up to ``max_completion_length`` tokens, the prompt prefilled once per group — and reports per
model and temperature:

* ``signal``: the share of groups whose accuracy rewards differ (what trains);
* ``accuracy``: the mean sampled accuracy (the accuracy reward's mean, as ``rewards/accuracy/mean``);
* ``pass@G``: the share of groups with at least one correct completion (what GRPO could reinforce);
* ``distinct``: the mean number of different answers in a group (1 = collapsed, up to the option count);
* ``format``: the share of completions with a parseable answer.

The answers are read as the accuracy reward reads them (``rewards.accuracy_mode`` of ``--params``).

    .venv/bin/python -m experiments.rollouts .cache/learning/warm-<key>/final --temperatures 1.0,1.3,1.6
    .venv/bin/python -m experiments.rollouts MODEL_A MODEL_B --prompts 64 --generations 8

Appends one record per model and temperature to ``--out`` (``experiments/out/rollouts.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embodied_r.config import load_params
from embodied_r.layout import Layout
from embodied_r.models.generation import load_for_generation, sample_answer_groups
from embodied_r.training.dataset import read_training_rows

ROOT = Path(__file__).resolve().parents[1]


def group_stats(answers: list[list[str | None]], solutions: list[str]) -> dict[str, float]:
    """The signal, accuracy, pass@G, distinct-answer and format figures of sampled groups (see the module doc)."""
    rewards = [[float(a == s) for a in group] for group, s in zip(answers, solutions, strict=True)]
    n_groups, n_completions = len(answers), sum(len(g) for g in answers)
    return {
        "signal": sum(len(set(r)) > 1 for r in rewards) / n_groups,
        "accuracy": sum(map(sum, rewards)) / n_completions,
        "pass_at_g": sum(max(r) for r in rewards) / n_groups,
        "distinct": sum(len(set(g)) for g in answers) / n_groups,
        "format": sum(a is not None for g in answers for a in g) / n_completions,
    }


def _progress(done: int, total: int) -> None:
    print(f"\r  {done}/{total} prompts", end="", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model folders (e.g. .cache/learning/warm-<key>/final)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--rows", default=None, help="training rows (default: the params' data_dir/training_set/train)")
    ap.add_argument("--prompts", type=int, default=48, help="training prompts sampled (seeded)")
    ap.add_argument("--generations", type=int, default=None, help="G (default: grpo.num_generations)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: grpo.max_completion_length")
    ap.add_argument("--temperatures", default=None, help="comma-separated (default: grpo.temperature)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out" / "rollouts.jsonl"))
    args = ap.parse_args(argv)

    params = load_params(args.params)
    answer_mode = params.rewards.accuracy_mode
    rows_path = Path(args.rows or Layout(root=ROOT, data_dir=params.data_dir).training_set / "train.jsonl")
    rows = [r for r in read_training_rows(rows_path) if r.choices]
    if not rows:
        sys.exit(
            f"{rows_path}: no multiple-choice rows to sample (build the training set first: dvc repro training_set)"
        )
    rows = random.Random(args.seed).sample(rows, min(args.prompts, len(rows)))
    generations = args.generations or params.grpo.num_generations
    max_new = args.max_new_tokens or params.grpo.max_completion_length
    temperatures = [float(t) for t in (args.temperatures or str(params.grpo.temperature)).split(",")]
    for model in args.models:
        if not Path(model, "config.json").is_file():
            sys.exit(f"{model}: not a model folder (no config.json)")
        policy, tokenizer = load_for_generation(model)  # fp32, once per model, whatever the temperatures
        for temperature in temperatures:
            started = time.perf_counter()
            answers = sample_answer_groups(
                policy, tokenizer, rows, generations, temperature=temperature, max_new_tokens=max_new,
                answer_mode=answer_mode, seed=args.seed, progress=_progress,
            )  # fmt: skip
            print(file=sys.stderr)
            stats = group_stats(answers, [r.solution for r in rows])
            record = {
                "model": model, "rows": str(rows_path), "prompts": len(rows), "generations": generations,
                "temperature": temperature, "max_new_tokens": max_new, "answer_mode": answer_mode,
                **{k: round(v, 4) for k, v in stats.items()}, "seconds": round(time.perf_counter() - started, 1),
            }  # fmt: skip
            print(
                f"{model} T={temperature}: signal {stats['signal']:.2f}  accuracy {stats['accuracy']:.3f}  "
                f"pass@{generations} {stats['pass_at_g']:.2f}  distinct {stats['distinct']:.2f}  "
                f"format {stats['format']:.2f}  ({record['seconds']} s)",
                flush=True,
            )
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
