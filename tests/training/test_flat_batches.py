"""Flat micro-batches (every advantage 0) skip their passes and train the same weights as TRL's passes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from embodied_r.training.flat_batches import SkipFlatBatchesGRPOTrainer, zero_gradient_loss

TEMPERATURE = 0.7


@pytest.fixture
def model(tiny_lm):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)


def test_the_zero_loss_gives_every_weight_a_zero_gradient(model):
    """Not ``None``: PyTorch's optimizers skip weights without a gradient (no Adam momentum, no weight decay)."""
    loss = zero_gradient_loss(model)
    loss.backward()
    assert loss.item() == 0.0
    weights = [p for p in model.parameters() if p.requires_grad]
    assert weights and all(p.grad is not None and p.grad.shape == p.shape and not p.grad.any() for p in weights)


class LengthThenFormat:
    """The length reward (rewards differ within a group) on the first step, then the format reward only: constant
    with the think prefill, so every later batch is flat."""

    def weights_at(self, epoch: float | None = None, step_fraction: float | None = None) -> tuple[float, float, float]:
        assert step_fraction is not None
        return (0.0, 1.0, 0.0) if step_fraction < 0.25 else (1.0, 0.0, 0.0)


@pytest.mark.slow
def test_flat_batches_skip_their_passes_and_train_the_same_weights(tiny_lm, tiny_rows, tmp_path, monkeypatch):
    """One informative step, then flat ones: skipping the flat steps' passes ends on the weights the full passes
    reach (Adam keeps moving them on its momentum through the zero gradients), and the skips are counted."""
    from safetensors.torch import load_file

    from tests.training.test_grpo import logged, tiny_cfg, train

    cfg = tiny_cfg(max_steps=4, beta=0.0, learning_rate=1e-2, warmup_ratio=0.0, temperature=TEMPERATURE)
    skipping = train(tiny_lm, tiny_rows, tmp_path / "skip", cfg, LengthThenFormat())
    skipped = logged(tmp_path / "skip", "flat_batch_skipped")
    assert skipped[1] == 0.0 and all(skipped[step] == 1.0 for step in (2, 3, 4)), skipped
    monkeypatch.setattr(SkipFlatBatchesGRPOTrainer, "_flat_batch", lambda self, inputs: False)
    full = train(tiny_lm, tiny_rows, tmp_path / "full", cfg, LengthThenFormat())
    assert set(logged(tmp_path / "full", "flat_batch_skipped").values()) == {0.0}
    weights = {
        name: load_file(f"{outcome.final_model_path}/model.safetensors")
        for name, outcome in (("skip", skipping), ("full", full))
    }
    first = load_file(f"{tiny_lm}/model.safetensors")
    for name, tensor in weights["skip"].items():
        torch.testing.assert_close(tensor, weights["full"][name], atol=1e-6, rtol=1e-5, msg=name)
    assert any(not torch.equal(t, first[n]) for n, t in weights["skip"].items())
