"""The reasoning LM: where its weights come from and what they are."""

from embodied_r.models.base_lm import BaseLM, model_summary, prepare_base_lm

__all__ = ["BaseLM", "model_summary", "prepare_base_lm"]
