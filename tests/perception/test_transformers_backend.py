"""The transformers backend end to end on a tiny, randomly initialised Qwen2.5-VL built offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from embodied_r.perception import PerceptionConfig, make_backend
from embodied_r.perception.backends import DescribeRequest
from embodied_r.perception.prompts import later_frame_prompt

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]  # fmt: skip
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen25_vl(folder: Path) -> None:
    """Save a tiny random Qwen2.5-VL, a character-level tokenizer and an image processor to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    vocab = {c: i for i, c in enumerate([chr(i) for i in range(32, 127)] + ["\n", "[UNK]"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="[UNK]"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
                       "fullatt_block_indexes": [1], "window_size": 56},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=112 * 112).save_pretrained(folder)


@pytest.mark.slow
def test_tiny_random_qwen25_vl_end_to_end(tmp_path: Path, world) -> None:
    pytest.importorskip("transformers")
    model_dir = tmp_path / "tiny-qwen2.5-vl"
    build_tiny_qwen25_vl(model_dir)
    cfg = PerceptionConfig(backend="transformers", model=str(model_dir), max_tokens=6, temperature=0.0, dtype="float32")
    backend = make_backend(cfg)
    video_id = sorted(world.videos)[0]
    images = tuple(sorted((world.keyframes_root / video_id).glob("frame_*.jpg"))[:2])
    request = DescribeRequest(
        prompt=later_frame_prompt(["Where is the red chair?\nA. left\nB. right"]),
        images=images, video_id=video_id, k=1, frame_indices=(0, 4), questions=("Where is the red chair?",),
    )  # fmt: skip
    answer = backend.describe(request)
    assert isinstance(answer.text, str)
    assert answer.prompt_tokens > len(request.prompt)  # character-level prompt plus the image patches
    assert 1 <= answer.completion_tokens <= 6
    assert backend.describe(request) == answer  # greedy: the same text again
