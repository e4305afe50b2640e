"""Benchmark: the C allocator and thread set-up of a training process — seconds, page faults and system time a step.

The issue (40): during GRPO, ``top`` showed 40–60 % system time in bursts and 25 M minor page faults after 32
CPU-minutes. A step allocates and frees blocks of tens to hundreds of MiB; glibc serves those above its mmap
threshold (≤ 32 MiB) with ``mmap`` and unmaps them on free, so the next step faults them in again and the kernel
zeroes every page. Each variant below runs in its own process (an allocator is chosen at start-up), a few GRPO steps
at the demo's settings (``params.yaml``'s ``grpo``: 8 completions of ≤ 40 tokens, one prompt a step) and a few
cold-start (supervised) steps at the demo's batch, on SmolLM2-135M when it is in the model cache, else on the tiny
test model (said in the report):

* ``default``     — glibc as it comes;
* ``tuned``       — :func:`embodied_r.runtime.tune_process` with ``runtime.malloc_keep_freed: true`` (what every
  stage's process runs when params.yaml turns it on): ``mallopt`` keeps freed memory in the heap for reuse
  (``M_MMAP_MAX`` 0, trim threshold 1 GiB);
* ``threshold``   — glibc's largest mmap threshold (``MALLOC_MMAP_THRESHOLD_`` 32 MiB, trim 1 GiB) by environment:
  blocks above 32 MiB are still mapped each time;
* ``thp``         — torch's own ``THP_MEM_ALLOC_ENABLE=1`` (large blocks on 2 MiB transparent huge pages);
* ``threads``     — inter-op threads 1, intra-op threads = cores set explicitly (``OMP_NUM_THREADS``);
* ``jemalloc`` / ``tcmalloc`` — ``LD_PRELOAD`` of the library, only when a ``.so`` is on this machine (none is
  installed by this script).

Variants are interleaved over ``--rounds`` rounds (order rotated each round), so a load on the shared machine touches
them all. Per variant: median seconds per step (first step of each run dropped: warm-up) and, per round, the ratio
to ``default`` of the same round with a 95% bootstrap interval over the rounds (``benchmarks/grpo.py``'s
``ratio_interval``); and the counters a busy machine does not change: minor page faults per step, the system share
of CPU time (sys / (user + sys)) and the peak resident memory.

    .venv/bin/python benchmarks/allocator.py                      # the demo's model and settings, 3 rounds
    .venv/bin/python benchmarks/allocator.py --variants default tuned --rounds 5
    .venv/bin/python benchmarks/allocator.py --model tiny --grpo-steps 2 --cold-steps 2   # the smoke run
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Variant -> environment it adds. ``tuned`` and ``threads`` also act inside the child (see ``child``).
GIB = str(2**30)
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "tuned": {},
    "threshold": {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": GIB},
    "thp": {"THP_MEM_ALLOC_ENABLE": "1"},
    "threads": {"OMP_NUM_THREADS": str(os.cpu_count() or 1)},
}
#: Environment a variant must not inherit from this process (so ``default`` really is glibc's default).
TUNING_ENV = ("MALLOC_", "THP_MEM_ALLOC_ENABLE", "OMP_NUM_THREADS", "LD_PRELOAD")


def preload_libraries() -> dict[str, str]:
    """jemalloc / tcmalloc shared objects present on this machine (name -> path): those the dynamic linker knows
    (``ldconfig``) and those in the usual library folders. Nothing is installed."""
    import ctypes.util

    found = {}
    for name, stems in (("jemalloc", ("jemalloc",)), ("tcmalloc", ("tcmalloc", "tcmalloc_minimal"))):
        for stem in stems:
            hits = [ctypes.util.find_library(stem), *sorted(
                hit for folder in ("/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib")
                for hit in glob.glob(f"{folder}/lib{stem}.so*")
            )]  # fmt: skip
            hit = next((h for h in hits if h), None)
            if hit:
                found[name] = hit
                break
    return found


def variant_env(name: str, preloads: dict[str, str]) -> dict[str, str]:
    """The child's environment for variant ``name``: this process's, less any tuning, plus the variant's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(TUNING_ENV)}
    env.update(VARIANTS.get(name, {}))
    if name in preloads:
        env["LD_PRELOAD"] = preloads[name]
    return env


# --------------------------------------------------------------------------------------------------- the child


def usage() -> tuple[float, int, float, float]:
    """(wall clock, minor page faults, user CPU s, system CPU s) of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_minflt, r.ru_utime, r.ru_stime


def step_deltas(marks: list[tuple[float, int, float, float]]) -> list[dict[str, float]]:
    """Per-step differences of consecutive :func:`usage` marks, the first step (warm-up) dropped."""
    steps = [
        {"seconds": b[0] - a[0], "faults": b[1] - a[1], "user": b[2] - a[2], "sys": b[3] - a[3]}
        for a, b in itertools.pairwise(marks)
    ]
    return steps[1:]


def demo_like_rows(path: Path, tokenizer: Any, n: int, prompt_tokens: int) -> Path:
    """``n`` training rows shaped like the demo's: the R1 system prompt, a video described frame by frame (padded to
    about ``prompt_tokens`` chat-templated tokens) and a four-option question whose options are actions."""
    from embodied_r.perception.lm_prompt import SYSTEM_PROMPT
    from embodied_r.training.rows import TrainingRow

    options = ["move forward", "rotate left", "rotate right", "move backward"]
    rows = []
    for i in range(n):
        question = "Question: what did the agent do next?\n" + "\n".join(
            f"{letter}. {text}" for letter, text in zip("ABCD", options[i % 4 :] + options[: i % 4], strict=True)
        )
        frames = ["Frame 0: Observe: a red chair to the left, a wooden table ahead and a door on the right."]
        while True:
            user = "You are an agent in a room. Video content:\n<\n" + "\n".join(frames) + f"\n>\n{question}"
            prompt = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            length = len(tokenizer(text, add_special_tokens=False).input_ids)
            if length >= prompt_tokens or len(frames) > prompt_tokens:
                break
            k = len(frames)
            frames.append(f"Frame {k}: After {options[(k + i) % 4]}, Observe: a lamp {k % 5 + 1} m ahead, a plant "
                          f"to the {'left' if k % 2 else 'right'}, the door {k % 3 + 2} m away.")  # fmt: skip
        rows.append(
            TrainingRow(
                question_id=f"q{i}", prompt=prompt, solution="ABCD"[i % 4], question=question,
                choices=list("ABCD"), category="action_generation", data_source="synthetic",
                scene_name=f"scene{i % 3}", split="train", prompt_tokens=length,
            ).model_dump()
        )  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One variant's run in this process: its set-up, then GRPO and cold-start steps; the per-step counters."""
    if args.child == "tuned":
        from embodied_r.config import RuntimeConfig
        from embodied_r.runtime import tune_process

        tune_process(RuntimeConfig(malloc_keep_freed=True))
    import logging
    import warnings

    import torch
    from transformers import TrainerCallback

    from embodied_r.config import load_params

    if args.child == "threads":
        torch.set_num_interop_threads(1)
        torch.set_num_threads(os.cpu_count() or 1)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    class Marks(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int, float, float]] = []

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.marks.append(usage())

        def on_train_end(self, *a: Any, **k: Any) -> None:
            self.marks.append(usage())

    params = load_params(ROOT / "params.yaml")
    out = Path(args.out)
    result: dict[str, Any] = {"variant": args.child, "threads": torch.get_num_threads()}
    if args.cold_steps:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM

        from embodied_r.training.config import GrpoTrainingConfig
        from embodied_r.training.grpo import load_rows, load_tokenizer
        from embodied_r.training.rows import TrainingRow
        from embodied_r.training.supervised import (
            cold_start_examples,
            completion_only_trainer,
            render_examples,
            sft_arguments,
        )

        batch = args.cold_batch or params.cold_start.batch_size
        cfg = params.cold_start.model_copy(
            update={"max_steps": args.cold_steps, "examples": args.cold_steps * batch, "batch_size": batch,
                    "save_steps": 10_000, "precision": "fp32"}
        )  # fmt: skip
        rows = [TrainingRow(**r) for r in load_rows(args.rows)]
        tokenizer = load_tokenizer(args.model, GrpoTrainingConfig(think_prefill=cfg.think_prefill))
        dataset = Dataset.from_list(render_examples(cold_start_examples(rows, cfg), tokenizer, cfg.think_prefill))
        longest = max(len(tokenizer(e["prompt"] + e["completion"]).input_ids) for e in dataset) + 1
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, local_files_only=True)
        trainer = completion_only_trainer()(
            model=model,
            args=sft_arguments(cfg, out / "cold", max_length=longest),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        marks = Marks()
        trainer.add_callback(marks)
        trainer.train()
        result["cold"] = step_deltas(marks.marks)
        del trainer, model
    if args.grpo_steps:
        from embodied_r.rewards import build_reward_funcs
        from embodied_r.training.grpo import train_grpo

        rewards = params.rewards.model_copy(
            update={"judge": params.rewards.judge.model_copy(update={"backend": "none"})}
        )
        funcs, names = build_reward_funcs(rewards)
        update = {"max_steps": args.grpo_steps, "save_steps": 10_000, "precision": "fp32"}
        if args.completion_tokens:
            update["max_completion_length"] = args.completion_tokens
        cfg = params.grpo.model_copy(update=update)
        marks = Marks()
        train_grpo(args.model, args.rows, out / "grpo", cfg, funcs, names, rewards.schedule, resume=False,
                   callbacks=[marks])  # fmt: skip
        result["grpo"] = step_deltas(marks.marks)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# -------------------------------------------------------------------------------------------------- the parent


def resolve_model(model: str | None, scratch: Path) -> tuple[str, str]:
    """(model folder, what to call it): ``--model``, else the params' base LM when it is already in the model cache
    (nothing is fetched), else the tiny test model. ``tiny`` asks for the tiny model."""
    if model and model != "tiny":
        return model, Path(model).name
    if model is None:
        from embodied_r.config import load_params
        from embodied_r.models.base_lm import prepare_base_lm

        lm = load_params(ROOT / "params.yaml").lm
        try:
            path = prepare_base_lm(lm.base, Path(lm.cache_dir).expanduser()).path
            return str(path), Path(path).name
        except Exception as exc:  # any reason it is not here: fall back, and say so
            print(f"{lm.base} is not available ({type(exc).__name__}): the tiny test model instead")
    from embodied_r.models.tiny import build_tiny_lm

    return str(build_tiny_lm(scratch / "tiny_lm")), "the tiny test model (not the demo's LM)"


def summarise(name: str, runs: list[dict[str, Any]], stage: str) -> dict[str, float]:
    steps = [s for run in runs for s in run.get(stage, [])]
    cpu = sum(s["user"] + s["sys"] for s in steps)
    return {
        "seconds": statistics.median(s["seconds"] for s in steps) if steps else float("nan"),
        "faults": statistics.mean(s["faults"] for s in steps) if steps else float("nan"),
        "sys_share": sum(s["sys"] for s in steps) / cpu if cpu else float("nan"),
        "cpu_per_wall": cpu / sum(s["seconds"] for s in steps) if steps else float("nan"),
        "steps": len(steps),
        "max_rss_mb": max(run["max_rss_mb"] for run in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="local HF model folder, or 'tiny' (default: params' lm.base if cached)")
    parser.add_argument("--variants", nargs="+", help="default first (the reference); default: all available")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps a run (first one dropped: warm-up)")
    parser.add_argument("--cold-steps", type=int, default=2, help="cold-start steps a run (first one dropped)")
    parser.add_argument("--cold-batch", type=int, help="cold-start batch (default: params' cold_start.batch_size)")
    parser.add_argument("--completion-tokens", type=int, help="GRPO completion budget (default: params')")
    parser.add_argument("--prompt-tokens", type=int, default=560, help="prompt length (the demo's median: 555)")
    parser.add_argument("--parallel", action="store_true", help="run a round's variants at the same time")
    parser.add_argument("--json", type=Path, help="also write every run's counters here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0

    from grpo import ratio_interval

    preloads = preload_libraries()
    available = [*VARIANTS, *preloads]
    variants = args.variants or available
    unknown = [v for v in variants if v not in available]
    if unknown:
        print(f"unknown or unavailable variants {unknown}: choose from {available}", file=sys.stderr)
        return 2
    if variants[0] != "default":
        variants = ["default", *(v for v in variants if v != "default")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, model_name = resolve_model(args.model, tmp)
        from embodied_r.training.config import GrpoTrainingConfig
        from embodied_r.training.grpo import load_tokenizer

        rows = demo_like_rows(tmp / "rows.jsonl", load_tokenizer(model, GrpoTrainingConfig()), 16, args.prompt_tokens)
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            commands = {}
            for name in order:
                command = [sys.executable, __file__, "--child", name, "--model", model, "--rows", str(rows),
                           "--out", str(tmp / f"{name}-{r}"), "--grpo-steps", str(args.grpo_steps),
                           "--cold-steps", str(args.cold_steps)]  # fmt: skip
                for flag in ("cold_batch", "completion_tokens"):
                    if getattr(args, flag):
                        command += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
                commands[name] = command
            # --parallel: a round's variants at once, so they share the same load; else one after another.
            batches = [order] if args.parallel else [[name] for name in order]
            for batch in batches:
                procs = {
                    name: subprocess.Popen(commands[name], env=variant_env(name, preloads), stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
                    for name in batch
                }  # fmt: skip
                for name, proc in procs.items():
                    stdout, stderr = proc.communicate()
                    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
                    if proc.returncode != 0 or line is None:
                        print(f"variant {name} failed (exit {proc.returncode}):\n{stderr[-3000:]}", file=sys.stderr)
                        return 1
                    runs[name].append(json.loads(line.removeprefix("RESULT ")))
                    print(f"round {r + 1}/{args.rounds} {name}: {line.removeprefix('RESULT ')}", flush=True)

    print(
        f"\nAllocator and threads, {started}; {os.cpu_count()} cores; model {model_name}; prompt ≈ "
        f"{args.prompt_tokens} tokens; {args.rounds} rounds x ({args.grpo_steps} GRPO + {args.cold_steps} cold-start "
        f"steps, first of each dropped); jemalloc/tcmalloc .so on this machine: {', '.join(preloads) or 'none'}\n"
    )
    print("| stage | variant | s/step (median) | ratio to default [95% CI] | minor faults/step | sys share of CPU "
          "| CPU/wall | peak RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for stage, steps in (("cold", args.cold_steps), ("grpo", args.grpo_steps)):
        if steps < 2:
            continue
        for name in variants:
            s = summarise(name, runs[name], stage)
            per_round = [[x["seconds"] for x in run[stage]] for run in runs[name]]
            reference = [[x["seconds"] for x in run[stage]] for run in runs["default"]]
            mid, low, high = ratio_interval(per_round, reference)
            label = "cold start" if stage == "cold" else "GRPO"
            print(f"| {label} | {name} | {s['seconds']:.2f} | {mid:.3f} [{low:.3f}, {high:.3f}] | {s['faults']:,.0f} "
                  f"| {s['sys_share']:.1%} | {s['cpu_per_wall']:.2f} | {s['max_rss_mb']:,.0f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"model": model_name, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
