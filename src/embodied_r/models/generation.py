"""Decoding with the reasoning LM outside a trainer: loading a model folder, and sampling groups of answers.

:func:`load_for_generation` is how evaluation, the difficulty filter and the benchmarks load a model: eval mode,
the dtype ``grpo.precision`` would give it, a left-padding tokenizer (prompts end where generation starts) whose
pad token is EOS when it has none. :func:`sample_completion_groups` samples ``k`` completions of each row's prompt
the way GRPO samples a group — the chat template with its ``<think>`` prefill, plain temperature sampling
(``top_p`` 1, ``top_k`` 0: TRL's defaults, not the model's generation config), the prompt computed once for the
group; :func:`sample_answer_groups` reads each completion's answer as the accuracy reward does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from embodied_r.answers import AnswerMode, extract_answer
from embodied_r.training.rows import TrainingRow

__all__ = ["load_for_generation", "sample_answer_groups", "sample_completion_groups"]


def load_for_generation(
    model_dir: str | Path,
    *,
    precision: Literal["auto", "bf16", "fp32"] = "fp32",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a Hugging Face model folder, ready to decode.

    ``precision`` as ``grpo.precision`` (``auto``: bf16 on CUDA or a CPU with AMX, else fp32); ``device``: CUDA when
    there is one, else the CPU. The tokenizer pads on the left, with EOS as its pad token when it has none.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embodied_r.training.config import resolve_bf16

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left", trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if resolve_bf16(precision) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, trust_remote_code=trust_remote_code)
    return model.to(device).eval(), tokenizer


def sample_completion_groups(
    model: Any,
    tokenizer: Any,
    rows: Sequence[TrainingRow],
    k: int,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 2048,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[str]]:
    """``k`` sampled completions (decoded text, special tokens dropped) of each row's prompt, per row.

    Seeded once for the whole call, so the same rows, model and seed give the same completions on the same hardware
    and library versions. ``progress(done, total)`` is called after each row.
    """
    import torch

    from embodied_r.training.common_prefix import generate_after_common_prefix

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
    groups: list[list[str]] = []
    for done, row in enumerate(rows, 1):
        text = tokenizer.apply_chat_template(row.prompt, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        with torch.inference_mode():  # the prompt once, its last token and the completions k times
            new = generate_after_common_prefix(
                model, [ids] * k, len(ids) - 1, tokenizer.pad_token_id,
                max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling,
            )  # fmt: skip
        groups.append(tokenizer.batch_decode(new, skip_special_tokens=True))
        if progress is not None:
            progress(done, len(rows))
    return groups


def sample_answer_groups(
    model: Any,
    tokenizer: Any,
    rows: Sequence[TrainingRow],
    k: int,
    *,
    answer_mode: AnswerMode = "answer_tag",
    **sampling: Any,
) -> list[list[str | None]]:
    """:func:`sample_completion_groups` read as answers (``None``: none could be read), as the accuracy reward reads
    them (``answer_mode``); ``sampling``: its keyword arguments."""
    groups = sample_completion_groups(model, tokenizer, rows, k, **sampling)
    return [
        [extract_answer(text, row.choices, answer_mode, question=row.question) for text in texts]
        for texts, row in zip(groups, rows, strict=True)
    ]
