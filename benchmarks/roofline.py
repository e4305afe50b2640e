"""Benchmark: each training and evaluation stage against what this machine can do (a roofline).

1. **The machine's peak, measured here**: matmul GFLOP/s in fp32 and bf16 at the LM's own shapes — ``M`` token rows
   times the hidden size into the MLP width, back, and into the vocabulary (``M`` = 1: one sequence decoding; the
   group size: a GRPO group decoding together; 512: a training or prefill batch) — and memory bandwidth (a large
   tensor copy, bytes read + written per second).
2. **Each stage's work, counted from the model's config**: the FLOPs of its passes (2 × weights × tokens for a
   forward pass, 3 × that with the backward, plus attention's score and value products) and the bytes of weights it
   must stream (a decoding step reads every weight once, whatever the batch).
3. **Each stage timed on the model**, in this process: a GRPO step's generation (one prompt, ``G`` completions of
   ``L`` tokens; the prompt repeated ``G`` times, as TRL's generation repeats it), its forward + backward over the
   ``G`` sequences, a cold-start step (forward + backward of a micro-batch), and an evaluation batch (greedy
   decoding of ``--eval-batch`` prompts).
   Its bound is ``max(FLOPs / peak FLOP/s, bytes / bandwidth)``; its **share of the roofline** is bound / measured
   time (1.0 = at the hardware's limit).

    .venv/bin/python benchmarks/roofline.py                        # the params' base LM (SmolLM2-135M by default)
    .venv/bin/python benchmarks/roofline.py --model DIR --markdown docs/roofline.md

The timed stages use plain Hugging Face passes on random token ids of the demo's lengths (no rewards, no
optimizer state): they time the arithmetic a stage cannot avoid, not the project's bookkeeping around it —
``benchmarks/grpo.py`` measures that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

ROOT = Path(__file__).resolve().parents[1]


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and the vector flags that decide matmul speed (AVX2, AVX-512*, AMX*)."""
    name, flags = platform.processor() or "unknown", []
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and name in ("unknown", "", platform.processor()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                wanted = ("avx2", "fma", "avx512", "amx")
                flags = sorted({f for f in line.split(":", 1)[1].split() if f.startswith(wanted)})
                break
    return name, flags


def best_seconds(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """The fastest of ``repeat`` timed calls after ``warmup`` untimed ones (the machine may be shared)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype, repeat: int) -> float:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    seconds = best_seconds(lambda: torch.matmul(a, b), repeat)
    return 2 * m * k * n / seconds / 1e9


def copy_bandwidth_gbs(megabytes: int, repeat: int) -> float:
    """Bytes read + written per second by a ``megabytes`` fp32 tensor copy."""
    src = torch.randn(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    seconds = best_seconds(lambda: dst.copy_(src), repeat)
    return 2 * src.numel() * 4 / seconds / 1e9


@dataclass(frozen=True)
class Shape:
    """What the FLOP and byte counts need from a decoder-only LM's config."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    params: int  # every weight, embeddings included (tied or not)

    @classmethod
    def of(cls, model: torch.nn.Module) -> Shape:
        c = model.config
        return cls(
            layers=c.num_hidden_layers,
            hidden=c.hidden_size,
            intermediate=c.intermediate_size,
            heads=c.num_attention_heads,
            kv_heads=getattr(c, "num_key_value_heads", c.num_attention_heads),
            vocab=c.vocab_size,
            params=sum(p.numel() for p in model.parameters()),
        )

    @property
    def matmul_weights(self) -> int:
        """Weights each token multiplies through: q, k, v, o, the gated MLP in every layer, and the LM head."""
        head_dim = self.hidden // self.heads
        kv = self.kv_heads * head_dim
        per_layer = (
            self.hidden * (self.hidden + 2 * kv) + self.hidden * self.hidden + 3 * self.hidden * self.intermediate
        )
        return self.layers * per_layer + self.hidden * self.vocab

    def forward_flops(self, tokens: int, context: float) -> float:
        """A forward pass over ``tokens`` tokens that each attend to ``context`` positions on average."""
        return 2 * self.matmul_weights * tokens + 4 * self.layers * self.hidden * context * tokens


@dataclass
class Stage:
    name: str
    seconds: float
    flops: float
    bytes: float  # weights (and activations, where they dominate) that must cross the memory bus at least once

    def bound(self, peak_flops: float, bandwidth: float) -> float:
        return max(self.flops / peak_flops, self.bytes / bandwidth)


def time_stages(model, shape: Shape, args, dtype: torch.dtype) -> list[Stage]:
    """Time the four stages on ``model`` (random token ids of the requested lengths) and count their work."""
    torch.manual_seed(0)
    vocab = shape.vocab
    p, g, new, bytes_per = args.prompt_tokens, args.generations, args.new_tokens, torch.finfo(dtype).bits // 8
    weight_bytes = shape.params * bytes_per
    prompt = torch.randint(0, vocab, (1, p))
    stages = []

    def generate(batch: torch.Tensor, **kwargs) -> None:
        with torch.no_grad():
            model.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=new, min_new_tokens=new,
                           pad_token_id=0, **kwargs)  # fmt: skip

    # GRPO generation: the prompt repeated for the group (TRL generates from G copies, so it is prefilled G times),
    # then ``new`` decoding steps of ``g`` sequences.
    seconds = best_seconds(lambda: generate(prompt.expand(g, p), do_sample=True, temperature=1.0, top_k=0), args.repeat)
    flops = shape.forward_flops(g * p, p / 2) + shape.forward_flops(g * new, p + new / 2)
    stages.append(Stage(f"GRPO generation ({g}x{new} tok)", seconds, flops, new * weight_bytes))

    # GRPO forward + backward over the group's sequences (each prompt + completion), as TRL's passes run them.
    seqs = torch.randint(0, vocab, (g, p + new))
    model.train()

    def train_pass(ids: torch.Tensor) -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    seconds = best_seconds(lambda: train_pass(seqs), args.repeat)
    tokens = g * (p + new)
    stages.append(
        Stage(
            f"GRPO fwd+bwd ({g}x{p + new} tok)",
            seconds,
            3 * shape.forward_flops(tokens, (p + new) / 2),
            3 * weight_bytes,
        )
    )

    # A cold-start step: forward + backward of a micro-batch of prompts with a short answer.
    cold = torch.randint(0, vocab, (args.cold_batch, p + 30))
    seconds = best_seconds(lambda: train_pass(cold), args.repeat)
    tokens = args.cold_batch * (p + 30)
    stages.append(
        Stage(f"cold-start step ({args.cold_batch}x{p + 30} tok)", seconds,
              3 * shape.forward_flops(tokens, (p + 30) / 2), 3 * weight_bytes)
    )  # fmt: skip
    model.eval()
    model.zero_grad(set_to_none=True)

    # An evaluation batch: greedy decoding of ``eval_batch`` prompts.
    batch = torch.randint(0, vocab, (args.eval_batch, p))
    seconds = best_seconds(lambda: generate(batch, do_sample=False), args.repeat)
    flops = shape.forward_flops(args.eval_batch * p, p / 2) + shape.forward_flops(args.eval_batch * new, p + new / 2)
    stages.append(Stage(f"evaluation batch ({args.eval_batch}x{new} tok)", seconds, flops, new * weight_bytes))
    return stages


def resolve_model(model: str | None) -> str:
    if model:
        return model
    from embodied_r.config import load_params
    from embodied_r.models.base_lm import prepare_base_lm

    lm = load_params(ROOT / "params.yaml").lm
    return str(prepare_base_lm(lm.base, Path(lm.cache_dir).expanduser()).path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local HF model folder (default: the params' lm.base)")
    parser.add_argument("--prompt-tokens", type=int, default=640, help="prompt length (the demo's are ~500-800)")
    parser.add_argument("--generations", type=int, default=8, help="G, completions per prompt (grpo.num_generations)")
    parser.add_argument("--new-tokens", type=int, default=40, help="completion length (grpo.max_completion_length)")
    parser.add_argument("--cold-batch", type=int, default=8, help="cold_start.batch_size")
    parser.add_argument("--eval-batch", type=int, default=16, help="evaluation.batch_size")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each measurement; the fastest counts")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM

    cpu, flags = cpu_model_and_flags()
    threads = torch.get_num_threads()
    lines = [
        f"Roofline of {dt.date.today().isoformat()} on {cpu} ({os.cpu_count()} cores, torch {torch.__version__}, "
        f"{threads} threads); CPU flags: {' '.join(flags) or 'none read'}",
        "",
        "| peak | shape (M x K x N) | fp32 GFLOP/s | bf16 GFLOP/s |",
        "|---|---|---|---|",
    ]
    model_dir = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, local_files_only=True)
    model.eval()
    shape = Shape.of(model)
    peaks: dict[torch.dtype, float] = {torch.float32: 0.0, torch.bfloat16: 0.0}
    for m in (1, args.generations, 512):
        for k, n, what in (
            (shape.hidden, shape.intermediate, "MLP up"),
            (shape.intermediate, shape.hidden, "MLP down"),
            (shape.hidden, shape.vocab, "LM head"),
        ):
            row = {}
            for dtype in peaks:
                row[dtype] = matmul_gflops(m, k, n, dtype, args.repeat)
                peaks[dtype] = max(peaks[dtype], row[dtype])
            lines.append(f"| {what} | {m} x {k} x {n} | {row[torch.float32]:.1f} | {row[torch.bfloat16]:.1f} |")
    bandwidth = copy_bandwidth_gbs(256, args.repeat)
    lines += [
        "",
        f"peak matmul: fp32 {peaks[torch.float32]:.1f} GFLOP/s, bf16 {peaks[torch.bfloat16]:.1f} GFLOP/s "
        f"(bf16/fp32 {peaks[torch.bfloat16] / peaks[torch.float32]:.2f}); memory bandwidth (256 MB copy) "
        f"{bandwidth:.1f} GB/s",
        "",
        f"model: {Path(model_dir).name} ({shape.params / 1e6:.1f} M weights, {shape.layers} layers, hidden "
        f"{shape.hidden}); prompt {args.prompt_tokens} tokens, fp32",
        "",
        "| stage | measured s | GFLOP | weight MB streamed | bound s | bound by | share of roofline |",
        "|---|---|---|---|---|---|---|",
    ]
    peak, bw = peaks[torch.float32] * 1e9, bandwidth * 1e9
    for stage in time_stages(model, shape, args, torch.float32):
        bound = stage.bound(peak, bw)
        by = "compute" if stage.flops / peak >= stage.bytes / bw else "memory"
        lines.append(
            f"| {stage.name} | {stage.seconds:.3f} | {stage.flops / 1e9:.1f} | {stage.bytes / 1e6:.0f} | "
            f"{bound:.3f} | {by} | {bound / stage.seconds:.0%} |"
        )
    lines += ["", f"command: python benchmarks/roofline.py {' '.join(argv if argv is not None else sys.argv[1:])}"]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
