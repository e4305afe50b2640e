"""Learnability: how much the LM learns from the *correct letters* of N training questions (a supervised bound).

GRPO learns the answer from rewards; per question it can learn at most what the correct letter itself tells.
This benchmark gives the LM that letter directly: each training question is the chat prompt with the think
prefill, the cold start's neutral ``<think>`` and ``<answer>``, and the loss is the cross-entropy of the correct
letter at that position (teacher forcing, no sampling). Every ``--eval-every`` examples the test questions are
scored the same way: the choice letter with the highest logit at the answer position (a forward pass each, no
decoding). If this curve stays at chance for N examples, GRPO on N prompts has nothing to find either.

``--prompt-grad none`` runs the prompt without gradients (only the answer tokens train; ~4x cheaper a question on a
CPU); ``all`` is the exact gradient. The prompt start all rows share is run once per batch.

    .venv/bin/python benchmarks/learnability.py --categories obj_appearance_order --examples 320 --lr 1e-4
    .venv/bin/python benchmarks/learnability.py --prompt-grad none --examples 800 --eval-every 200
    .venv/bin/python benchmarks/learnability.py --train-limit 16 --score-train --examples 320 --eval-every 64

The last is the sanity check: can the LM fit N questions it sees again and again (training accuracy per point)?

Appends its record (the whole curve) to ``--out`` (``benchmarks/out/learnability.jsonl``), also when stopped early
(Ctrl-C or ``kill``): then with the points measured so far and ``"stopped": true``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from embodied_r.data.records import append_jsonl
from embodied_r.training.common_prefix import common_prefix_length, pad_after_prefix, positions, prefill
from embodied_r.training.config import resolve_bf16
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.grpo import with_think_prefill
from embodied_r.training.supervised import NEUTRAL_THINK
from embodied_r.vocabulary import LETTERS

ROOT = Path(__file__).resolve().parents[1]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: data/models/base_lm.json's)")
    parser.add_argument("--data", default="data/training_set")
    parser.add_argument("--categories", default="", help="comma-separated tasks to keep (default: all)")
    parser.add_argument("--prompt-grad", choices=["all", "none"], default="all")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--train-limit", type=int, default=0, help="train on the first N (shuffled) questions only")
    parser.add_argument("--score-train", action="store_true", help="also score the training questions (memorised?)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="bf16 autocast over fp32 weights, as training uses ('auto': bf16 with AMX)")  # fmt: skip
    parser.add_argument("--out", default="benchmarks/out/learnability.jsonl")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    bf16 = resolve_bf16(args.precision)

    data = ROOT / args.data
    model_dir = args.model or json.loads((ROOT / "data/models/base_lm.json").read_text())["path"]
    keep = set(args.categories.split(",")) if args.categories else None
    train = [r for r in read_training_rows(data / "train.jsonl") if r.choices and (keep is None or r.category in keep)]
    test = [r for r in read_training_rows(data / "test.jsonl") if r.choices and (keep is None or r.category in keep)]
    random.Random(args.seed).shuffle(train)
    if args.train_limit:
        train = train[: args.train_limit]

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = with_think_prefill(tokenizer.chat_template)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    letter_ids = {c: tokenizer(c, add_special_tokens=False).input_ids[0] for c in LETTERS}
    suffix = tokenizer(NEUTRAL_THINK + "</think>\n<answer>", add_special_tokens=False).input_ids

    def encode(row) -> list[int]:
        text = tokenizer.apply_chat_template(row.prompt, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False).input_ids + suffix

    enc_train, enc_test = [encode(r) for r in train], [encode(r) for r in test]
    n = common_prefix_length(enc_train + enc_test, keep=len(suffix) + 1)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def answer_logits(seqs: list[list[int]], grad: bool) -> torch.Tensor:
        """Logits at the answer position; the prompt with or without gradients, the suffix always with."""
        ids, mask = pad_after_prefix(seqs, n, pad)
        cut = ids.size(1) - len(suffix)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with autocast, nullcontext() if grad and args.prompt_grad == "all" else torch.no_grad():
            cache = prefill(model, ids, mask, n, cut)
        with autocast, nullcontext() if grad else torch.no_grad():
            out = model(input_ids=ids[:, cut:], attention_mask=mask, position_ids=positions(mask)[:, cut:],
                        past_key_values=cache, use_cache=True, logits_to_keep=1)  # fmt: skip
        return out.logits[:, -1]

    def accuracy(rows, encoded) -> dict:
        hits: dict[str, list[bool]] = {}
        for start in range(0, len(rows), 8):
            logits = answer_logits(encoded[start : start + 8], grad=False)
            for row, lg in zip(rows[start : start + 8], logits, strict=True):
                choice = max(row.choices, key=lambda c: lg[letter_ids[c]].item())
                hits.setdefault(row.category, []).append(choice == row.solution)
        pooled = [h for v in hits.values() for h in v]
        return {"pooled": sum(pooled) / len(pooled), "per_category": {c: sum(v) / len(v) for c, v in hits.items()}}

    def evaluate() -> dict:
        model.eval()
        point = accuracy(test, enc_test)
        if args.score_train:
            point["train_accuracy"] = accuracy(train, enc_train)["pooled"]
        model.train()
        return point

    print(
        f"{len(train)} train, {len(test)} test questions; {n} shared prompt tokens; prompt grad {args.prompt_grad}"
        f"{', bf16' if bf16 else ''}"
    )
    curve = [{"examples": 0, **evaluate()}]
    print(f"  0 examples: test {curve[-1]['pooled']:.3f} {curve[-1]['per_category']}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    seen, losses, train_s, stopped = 0, [], 0.0, False
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` keeps the curve so far, like Ctrl-C
    try:
        while seen < args.examples:
            for start in range(0, len(train), args.batch):
                step_started = time.perf_counter()
                batch = list(range(start, min(start + args.batch, len(train), start + args.examples - seen)))
                logits = answer_logits([enc_train[i] for i in batch], grad=True)
                target = torch.tensor([letter_ids[train[i].solution] for i in batch])
                loss = torch.nn.functional.cross_entropy(logits.float(), target)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                train_s += time.perf_counter() - step_started
                before, seen = seen, seen + len(batch)
                if seen // args.eval_every != before // args.eval_every or seen >= args.examples:
                    recent = losses[-max(1, args.eval_every // args.batch) :]
                    curve.append({"examples": seen, "loss": sum(recent) / len(recent), "s_per_example": train_s / seen,
                                  **evaluate()})  # fmt: skip
                    fitted = f"train {curve[-1]['train_accuracy']:.3f} " if args.score_train else ""
                    print(f"  {seen} examples: loss {curve[-1]['loss']:.3f}, test {curve[-1]['pooled']:.3f} "
                          f"{ {c: round(v, 3) for c, v in curve[-1]['per_category'].items()} } "
                          f"{fitted}({curve[-1]['s_per_example']:.2f} s an example)", flush=True)  # fmt: skip
                if seen >= args.examples:
                    break
    except KeyboardInterrupt:
        stopped = True
        print(f"  stopped after {seen} examples; the curve so far is written", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)

    record = {"args": vars(args), "train": len(train), "test": len(test), "shared_tokens": n, "curve": curve,
              "stopped": stopped}  # fmt: skip
    append_jsonl(ROOT / args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
