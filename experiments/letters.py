"""Which letter does a model put at the answer position, and does it know more than a letter bias?

Greedy accuracy only shows each question's favourite letter; a model that leans a little towards the right option
everywhere, or one whose favourite is the same letter everywhere, look alike. This script reads the whole letter
distribution: each question's prompt (with the ``<think>`` prefill), the cold start's neutral reasoning, then
``</think>\\n<answer>``, one forward pass, and the next-token probabilities of the question's letters (renormalised
over them). It prints, per model:

* the mean probability of each letter and how often each is the favourite (what greedy decoding answers);
* the mean entropy of the letter distribution (ln 4 = 1.386 for a uniform guess over four options);
* the mean log-probability of the correct letter, and its expectation if each question's answer were a letter
  drawn from the rows' own answer-letter prior instead (the same distributions, scored against answers that carry
  no information about the question) — the **content gain** is the difference: about 0 for a model that knows
  nothing about the questions, however biased or noisy its letters, and > 0 only if its question-by-question
  distribution leans towards the right answers.

    .venv/bin/python -m experiments.letters .cache/learning/warm-<key>/final .cache/learning/grpo-<key>/final \\
        --rows data/training_set/test.jsonl --every 4

The neutral reasoning is what a cold-started model writes (its GRPO completions keep it); for models that reason
freely the figures describe the answer position after *that* reasoning, not after their own.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from embodied_r.data.records import append_jsonl
from embodied_r.training.config import GrpoTrainingConfig
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.grpo import load_tokenizer
from embodied_r.training.supervised import NEUTRAL_THINK


def letter_distributions(model_dir: str, rows, batch_size: int) -> list[dict[str, float]]:
    """For each row, its letters' probabilities at the answer position (renormalised over the row's letters)."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model_dir, GrpoTrainingConfig(think_prefill=True))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, local_files_only=True).eval()
    letter_ids = {}
    for letter in sorted({c for row in rows for c in row.choices}):
        ids = tokenizer(letter, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise SystemExit(f"{model_dir}: the letter {letter!r} is {len(ids)} tokens; this probe needs one")
        letter_ids[letter] = ids[0]
    texts = [
        tokenizer.apply_chat_template(row.prompt, add_generation_prompt=True, tokenize=False)
        + f"{NEUTRAL_THINK}</think>\n<answer>"
        for row in rows
    ]
    out = []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, padding_side="left",
                add_special_tokens=False,
            )  # fmt: skip
            logits = model(**enc).logits[:, -1, :]
            for row, row_logits in zip(rows[start : start + batch_size], logits, strict=True):
                picked = row_logits[[letter_ids[c] for c in row.choices]].softmax(-1).tolist()
                out.append(dict(zip(row.choices, picked, strict=True)))
    return out


def summarise(rows, dists: list[dict[str, float]]) -> dict:
    letters = sorted({c for d in dists for c in d})
    mean = {c: sum(d.get(c, 0.0) for d in dists) / len(dists) for c in letters}
    favourite = {c: sum(max(d, key=d.get) == c for d in dists) for c in letters}
    entropy = sum(-sum(p * math.log(p) for p in d.values() if p > 0) for d in dists) / len(dists)
    # the null: each row's answer drawn from the rows' answer-letter prior (restricted to the row's letters)
    prior = {c: sum(row.solution == c for row in rows) / len(rows) for c in letters}
    log_ps, gains = [], []  # per row: log p(correct), and that minus its expectation under the prior
    for row, d in zip(rows, dists, strict=True):
        total = sum(prior[c] for c in row.choices) or 1.0
        expected = sum(prior[c] / total * math.log(max(d[c], 1e-12)) for c in row.choices)
        log_ps.append(math.log(max(d[row.solution], 1e-12)))
        gains.append(log_ps[-1] - expected)
    log_p = sum(log_ps) / len(log_ps)
    gain = sum(gains) / len(gains)
    spread = math.sqrt(sum((g - gain) ** 2 for g in gains) / max(len(gains) - 1, 1) / len(gains))
    correct = sum(max(d, key=d.get) == row.solution for row, d in zip(rows, dists, strict=True))
    return {
        "mean_probability": {c: round(p, 3) for c, p in mean.items()},
        "favourite": favourite,
        "accuracy": round(correct / len(rows), 3),
        "entropy": round(entropy, 3),
        "log_p_correct": round(log_p, 4),
        "log_p_correct_null": round(log_p - gain, 4),
        "content_gain": round(gain, 4),
        # a normal interval over questions: a gain inside it is indistinguishable from knowing nothing
        "content_gain_ci95": [round(gain - 1.96 * spread, 4), round(gain + 1.96 * spread, 4)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="local model folders")
    parser.add_argument("--rows", default="data/training_set/test.jsonl")
    parser.add_argument("--every", type=int, default=1, help="every k-th row (1 = all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="experiments/out/letters.jsonl", help="appends each model's record")
    args = parser.parse_args()
    rows = [row for row in read_training_rows(Path(args.rows))[:: args.every] if row.choices]
    print(f"{len(rows)} multiple-choice rows from {args.rows}", flush=True)
    for model in args.models:
        dists = letter_distributions(model, rows, args.batch_size)
        stats = summarise(rows, dists)
        print(f"{model}:", flush=True)
        for key, value in stats.items():
            print(f"  {key}: {value}", flush=True)
        record = {"model": model, "rows": args.rows, "every": args.every, **stats,
                  "distributions": {row.question_id: d for row, d in zip(rows, dists, strict=True)}}  # fmt: skip
        append_jsonl(Path(args.out), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
