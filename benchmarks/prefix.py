"""Benchmark: the prompt start every row shares, computed once (``embodied_r.training.common_prefix``) or per row.

Two measurements on real rows (default ``data/training_set/test.jsonl``) and a real model, each path timed in this
one process, alternating, ``--rounds`` times (the median is reported; the machine may be shared):

(a) greedy evaluation: ``generate_completions`` of ``--rows`` questions with ``share_prefix`` on and off — the
    completions must be identical;
(b) a supervised step: the completion-only loss (forward + backward) of one micro-batch of ``--micro`` cold-start
    examples, with the common start run once or per row — the loss must agree.

    .venv/bin/python benchmarks/prefix.py --model ~/.cache/embodied-r/models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from embodied_r.evaluation.generate import generate_completions
from embodied_r.training.common_prefix import hidden_after_common_prefix
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.supervised import format_warmup_examples, render_examples, shared_prefix_length


def time_evaluation(model: str, rows, args) -> tuple[list[float], list[float], int]:
    shared_s, plain_s, mismatches = [], [], 0
    for _ in range(args.rounds):
        for share in (True, False):
            started = time.perf_counter()
            gens = generate_completions(
                model, rows, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, precision="fp32",
                progress=False, share_prefix=share,
            )  # fmt: skip
            (shared_s if share else plain_s).append(time.perf_counter() - started)
            if share:
                shared = gens
            else:
                mismatches = sum(a.text != b.text for a, b in zip(shared, gens, strict=True))
    return shared_s, plain_s, mismatches


def time_supervised_step(model_dir: str, rows, args) -> tuple[list[float], list[float], float, int]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = render_examples(format_warmup_examples(rows, n=args.micro, seed=0), tokenizer, False)
    texts = [e["prompt"] + e["completion"] for e in examples]
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    prompt_lens = [len(tokenizer(e["prompt"], add_special_tokens=False).input_ids) for e in examples]
    last = torch.tensor(prompt_lens)  # score the completion's first token of each row: enough to time backward
    kept = torch.zeros(ids.size(0), ids.size(1) - 1, dtype=torch.bool)
    kept[torch.arange(len(last)), last - 1] = True
    n = shared_prefix_length({"input_ids": ids, "attention_mask": mask}, kept)  # as the trainer decides it
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    shared_s, plain_s, losses = [], [], {}
    for _ in range(args.rounds):
        for share in (True, False):
            model.zero_grad()
            started = time.perf_counter()
            if share:
                hidden = hidden_after_common_prefix(model.base_model, ids, mask, n)
                picked = hidden[torch.arange(len(last)), last - 1 - n]
            else:
                hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
                picked = hidden[torch.arange(len(last)), last - 1]
            logits = model.get_output_embeddings()(picked)
            loss = torch.nn.functional.cross_entropy(logits, ids[torch.arange(len(last)), last])
            loss.backward()
            (shared_s if share else plain_s).append(time.perf_counter() - started)
            losses[share] = loss.item()
    return shared_s, plain_s, abs(losses[True] - losses[False]), n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a local Hugging Face model folder")
    parser.add_argument("--rows", default="data/training_set/test.jsonl")
    parser.add_argument("--n", type=int, default=48, help="questions for the evaluation measurement")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--micro", type=int, default=4, help="examples in the supervised micro-batch")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = [r for r in read_training_rows(Path(args.rows)) if r.choices][: args.n]
    model = str(Path(args.model).expanduser())
    torch.manual_seed(0)

    shared, plain, mismatches = time_evaluation(model, rows, args)
    ev = statistics.median(plain) / statistics.median(shared)
    print(f"evaluation, {len(rows)} questions, batch {args.batch_size}, {args.max_new_tokens} new tokens:")
    print(f"  shared prefix {statistics.median(shared):.1f} s, per row {statistics.median(plain):.1f} s: "
          f"{ev:.2f}x faster; completions differing: {mismatches} of {len(rows)}")  # fmt: skip

    shared, plain, gap, n = time_supervised_step(model, rows, args)
    st = statistics.median(plain) / statistics.median(shared)
    print(f"supervised step, micro-batch of {args.micro}, {n} shared tokens:")
    print(f"  shared prefix {statistics.median(shared):.2f} s, per row {statistics.median(plain):.2f} s: "
          f"{st:.2f}x faster; |loss difference| {gap:.2e}")  # fmt: skip
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
