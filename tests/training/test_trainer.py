"""The trainer the config asks for: the paper's (TRL's GRPOTrainer, exact zero advantages) plus opt-in components."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from embodied_r.config import TrainingSetConfig
from embodied_r.training.config import GrpoTrainingConfig
from embodied_r.training.dynamic_sampling import DynamicSamplingGRPOTrainer
from embodied_r.training.flat_batches import SkipFlatBatchesGRPOTrainer
from embodied_r.training.grpo import grpo_trainer_class
from embodied_r.training.shared_prompt import SharedPromptGRPOTrainer
from embodied_r.training.trainer import PaperGRPOTrainer

COMPONENTS = {
    "shared_prompt": SharedPromptGRPOTrainer,
    "skip_flat_batches": SkipFlatBatchesGRPOTrainer,
    "dynamic_sampling": DynamicSamplingGRPOTrainer,
}


def components_of(cls: type) -> set[str]:
    return {key for key, component in COMPONENTS.items() if issubclass(cls, component)}


def test_with_every_component_off_the_trainer_is_the_papers() -> None:
    cls = grpo_trainer_class(GrpoTrainingConfig(shared_prompt=False, skip_flat_batches=False, dynamic_sampling=0))
    assert cls is PaperGRPOTrainer and components_of(cls) == set()


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, {"shared_prompt", "skip_flat_batches"}),  # the defaults: the two that keep the paper's math
        ({"shared_prompt": False}, {"skip_flat_batches"}),
        ({"skip_flat_batches": False}, {"shared_prompt"}),
        ({"dynamic_sampling": 2}, {"shared_prompt", "skip_flat_batches", "dynamic_sampling"}),
        ({"dynamic_sampling": 3, "shared_prompt": False, "skip_flat_batches": False}, {"dynamic_sampling"}),
    ],
)
def test_each_setting_adds_its_component_and_only_it(settings, expected) -> None:
    cls = grpo_trainer_class(GrpoTrainingConfig(**settings))
    assert issubclass(cls, PaperGRPOTrainer) and components_of(cls) == expected
    if "dynamic_sampling" in expected:
        assert cls.dynamic_sampling_rounds == settings["dynamic_sampling"]
        # The redraw comes first: each redrawn batch goes through the other components' passes.
        assert cls.__mro__.index(DynamicSamplingGRPOTrainer) < cls.__mro__.index(PaperGRPOTrainer)


def test_the_same_config_gets_the_same_class() -> None:
    cfg = GrpoTrainingConfig(dynamic_sampling=2)
    assert grpo_trainer_class(cfg) is grpo_trainer_class(GrpoTrainingConfig(dynamic_sampling=2))
    assert grpo_trainer_class(GrpoTrainingConfig(dynamic_sampling=3)).dynamic_sampling_rounds == 3


def test_the_removed_tricks_are_refused_by_the_config() -> None:
    """The answer-letter entropy bonus and balanced option order measured no gain and left the library."""
    with pytest.raises(ValidationError, match="letter_entropy_coef"):
        GrpoTrainingConfig(letter_entropy_coef=0.05)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="option_order"):
        TrainingSetConfig(option_order="balanced")  # type: ignore[call-arg]
