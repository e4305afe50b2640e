"""A tiny randomly initialised causal LM with its own tokenizer, built from a config (no model hub, no download).

``lm.base: random:tiny-llama`` (the ``tiny`` profile, CI) and the tests use it: a one-layer Llama with hidden size
32 and a byte-level BPE tokenizer trained on a few sentences, so any text round-trips; the reasoning tags are added
tokens, so the random model can emit ``<think>`` etc. as single tokens and the format reward is reachable. Built
deterministically (fixed corpus, seed 0): the same folder bytes every time.

:func:`write_tiny_rows` writes training rows this model can be trained on, for the tests and the benchmarks'
smoke runs (``benchmarks/`` import the library, never the tests).
"""

from __future__ import annotations

from pathlib import Path

#: ``lm.base`` value of the tiny random model.
TINY_RANDOM_SOURCE = "random:tiny-llama"

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|im_start|>", "<|im_end|>", "<pad>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
CORPUS = [
    "Frame 0: Observe: a red chair to the left, a table ahead.",
    "Frame 1: After move forward, Observe: a door to the right.",
    "Question: which object is closer? A. chair B. table C. door D. lamp",
    "I think the chair is closer because it is to the left. The answer is A.",
    "rotate left rotate right tilt upward tilt downward move backward",
]


def build_tiny_lm(out: Path) -> Path:
    """Write a byte-level BPE tokenizer with a ChatML template and a 1-layer Llama to ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.add_tokens(TAGS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def write_tiny_rows(path: Path, n: int = 8, split: str = "train") -> Path:
    """Write ``n`` rows of the :class:`~embodied_r.training.rows.TrainingRow` contract as JSONL to ``path``.

    Short four-option questions over the tiny model's corpus, answers cycling A-D, two scenes.
    """
    import json

    from embodied_r.training.rows import TrainingRow

    rows = []
    for i in range(n):
        question = f"Question: which object is closer? A. chair B. table C. door D. lamp ({i})"
        rows.append(
            TrainingRow(
                question_id=f"q{i}",
                prompt=[
                    {"role": "system", "content": "Think in <think> </think>, answer in <answer> </answer>."},
                    {"role": "user", "content": f"Frame 0: Observe: a red chair to the left. {question}"},
                ],
                solution="ABCD"[i % 4],
                question=question,
                choices=["A", "B", "C", "D"],
                category="object_rel_distance",
                data_source="synthetic",
                scene_name=f"scene{i % 2}",
                split=split,
                prompt_tokens=40,
            )
        )
    path.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in rows))
    return path
