"""Learnability: how much the LM learns from the *correct answers* of N training questions (a supervised bound).

GRPO learns the answer from rewards; per question it can learn at most what the correct letter itself tells.
This benchmark gives the LM that letter directly: each training question is the chat prompt with the think
prefill, the cold start's neutral ``<think>`` and ``<answer>``, and the loss is the cross-entropy of the correct
letter at that position (teacher forcing, no sampling). Every ``--eval-every`` examples the test questions are
scored the same way: the choice letter with the highest logit at the answer position (a forward pass each, no
decoding). If this curve stays at chance for N examples, GRPO on N prompts has nothing to find either.

``--answer text`` puts the correct option's *text* in ``<answer>`` instead of its letter (``cold_start.answer:
option_text``): the loss is on that text's tokens, and a question is scored by the option whose text is likeliest
there. ``--think`` sets what comes before ``</think>``: the cold start's neutral sentence (default), ``notes`` (the
named objects frame by frame, copied from the prompt: a reading aid that holds no answer), or ``answer`` (the
correct option's text: a diagnostic of the last step alone, looking up the letter of a known answer).

``--prompt-grad none`` runs the prompt without gradients (only the answer tokens train; ~4x cheaper a question on a
CPU); ``all`` is the exact gradient. The prompt start all rows share is run once per batch.

    .venv/bin/python -m experiments.learnability --categories obj_appearance_order --examples 320 --lr 1e-4
    .venv/bin/python -m experiments.learnability --prompt-grad none --examples 800 --eval-every 200
    .venv/bin/python -m experiments.learnability --train-limit 16 --score-train --examples 320 --eval-every 64
    .venv/bin/python -m experiments.learnability --answer text --categories obj_appearance_order --lr 1e-4

The last is the sanity check: can the LM fit N questions it sees again and again (training accuracy per point)?

Appends its record (the whole curve) to ``--out`` (``experiments/out/learnability.jsonl``), also when stopped early
(Ctrl-C or ``kill``): then with the points measured so far and ``"stopped": true``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from embodied_r.data.records import append_jsonl, parse_choices
from embodied_r.training.common_prefix import common_prefix_length, pad_after_prefix, positions, prefill
from embodied_r.training.config import resolve_bf16
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.supervised import NEUTRAL_THINK, answer_content
from embodied_r.training.think_prefill import with_think_prefill
from embodied_r.vocabulary import LETTERS

ROOT = Path(__file__).resolve().parents[1]

_FRAME = re.compile(
    r"^Frame (\d+): (?:After (.+?), )?Observe: .*?"
    r"(?:Objects named in the question: (.+)\.|None of the objects named in the question are visible\.)$",
    re.M,
)
_MENTION = re.compile(r"an? (.+?) \([\w-]+-shaped\) (to the \w+|[\w-]+)(?:, about [\d.]+ m away)?")


def frame_notes(content: str) -> str:
    """``--think notes``: the frame notes of one user turn; ``""`` when its descriptions are not the embedded world's.

    >>> frame_notes("Frame 0: Observe: I see a red box (box-shaped) ahead, about 2.0 m away. "
    ...             "Objects named in the question: a red box (box-shaped) ahead, about 2.0 m away.\\n"
    ...             "Frame 1: After move left, Observe: No new objects came into view. "
    ...             "None of the objects named in the question are visible.")
    'Frame 0: red box ahead. Frame 1: move left; none.'
    """
    notes = []
    for match in _FRAME.finditer(content):
        index, action, named = match.groups()
        seen = ", ".join(f"{name} {where}" for name, where in _MENTION.findall(named)) if named else "none"
        notes.append(f"Frame {index}: " + (f"{action}; " if action else "") + f"{seen}.")
    return " ".join(notes)


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
    parser.add_argument("--think", choices=["neutral", "notes", "answer"], default="neutral",
                        help="the <think> before the answer: the cold start's neutral sentence; frame notes read off "
                             "the prompt (the named objects each frame shows; no answer); or, as a diagnostic of the "
                             "letter step alone, the correct option's text")  # fmt: skip
    parser.add_argument("--answer", choices=["letter", "text"], default="letter",
                        help="what the <answer> holds: the option letter (paper), or the option's text (scored "
                             "by each option text's likelihood; the loss is on the correct text's tokens)")  # fmt: skip
    parser.add_argument("--out", default="experiments/out/learnability.jsonl")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    bf16 = resolve_bf16(args.precision)

    data = ROOT / args.data
    # the pointer names the model relative to the project root
    model_dir = args.model or str(ROOT / json.loads((ROOT / "data/models/base_lm.json").read_text())["path"])
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
    suffix = tokenizer("</think>\n<answer>", add_special_tokens=False).input_ids

    def encode(row) -> list[int]:
        text = tokenizer.apply_chat_template(row.prompt, add_generation_prompt=True, tokenize=False)
        if args.think == "notes":
            think = frame_notes(row.prompt[-1]["content"])
        elif args.think == "answer":
            think = f"The answer is: {parse_choices(row.question)[row.solution]}."
        else:
            think = NEUTRAL_THINK
        return tokenizer(text + think, add_special_tokens=False).input_ids + suffix

    enc_train, enc_test = [encode(r) for r in train], [encode(r) for r in test]
    option_ids: dict[str, dict[str, list[int]]] = {}
    if args.answer == "text":
        for r in train + test:  # each option's text as the cold start writes it (cold_start.answer: option_text)
            try:
                texts = {c: answer_content(r, c, "option_text") for c in r.choices}
            except ValueError as exc:
                sys.exit(f"--answer text: {exc}")
            option_ids[r.question_id] = {c: tokenizer(t + "</answer>", add_special_tokens=False).input_ids
                                         for c, t in texts.items()}  # fmt: skip
    longest = max((len(ids) for options in option_ids.values() for ids in options.values()), default=0)
    n = common_prefix_length(enc_train + enc_test, keep=len(suffix) + longest + 1)
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

    def text_logps(seqs: list[list[int]], conts: list[list[int]], grad: bool) -> torch.Tensor:
        """Summed log-probs of each row's continuation ``conts[i]`` after ``seqs[i]`` (the option text mode)."""
        ids, mask = pad_after_prefix([s + c for s, c in zip(seqs, conts, strict=True)], n, pad)
        k = max(len(c) for c in conts) + 1
        cut = ids.size(1) - k
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with autocast, nullcontext() if grad and args.prompt_grad == "all" else torch.no_grad():
            cache = prefill(model, ids, mask, n, cut)
        with autocast, nullcontext() if grad else torch.no_grad():
            out = model(input_ids=ids[:, cut:], attention_mask=mask, position_ids=positions(mask)[:, cut:],
                        past_key_values=cache, use_cache=True)  # fmt: skip
        logps = out.logits.float().log_softmax(-1)
        return torch.stack([
            logps[i, k - len(c) - 1 : k - 1].gather(-1, torch.tensor(c)[:, None]).sum() for i, c in enumerate(conts)
        ])  # fmt: skip

    def choose(rows, encoded) -> list[str]:
        if args.answer == "letter":
            logits = answer_logits(encoded, grad=False)
            return [max(r.choices, key=lambda c: lg[letter_ids[c]].item()) for r, lg in zip(rows, logits, strict=True)]
        picks = []
        for row, seq in zip(rows, encoded, strict=True):
            options = option_ids[row.question_id]
            scores = text_logps([seq] * len(options), list(options.values()), grad=False)
            picks.append(list(options)[int(scores.argmax())])
        return picks

    def accuracy(rows, encoded) -> dict:
        hits: dict[str, list[bool]] = {}
        for start in range(0, len(rows), 8):
            for row, choice in zip(
                rows[start : start + 8], choose(rows[start : start + 8], encoded[start : start + 8]), strict=True
            ):
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
                if args.answer == "letter":
                    logits = answer_logits([enc_train[i] for i in batch], grad=True)
                    target = torch.tensor([letter_ids[train[i].solution] for i in batch])
                    loss = torch.nn.functional.cross_entropy(logits.float(), target)
                else:
                    conts = [option_ids[train[i].question_id][train[i].solution] for i in batch]
                    loss = -text_logps([enc_train[i] for i in batch], conts, grad=True).sum() / sum(map(len, conts))
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
