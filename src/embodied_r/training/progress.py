"""One quiet progress bar per training run instead of transformers' metric dicts printed at every step.

transformers' ``ProgressCallback`` writes the whole log dict (thirty-odd GRPO metrics) under its bar at every
logging step, and ``PrinterCallback`` prints it. :func:`use_quiet_progress` swaps both for
:class:`QuietProgress`: a tqdm bar whose postfix shows the few numbers worth watching (reward, each reward's
mean, loss, KL). The full metrics still go to MLflow and ``trainer_state.json``.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

#: Metrics shown in the bar's postfix, by their logged names (those present are shown).
SHOWN = {
    "reward": "reward",
    "rewards/format/mean": "format",
    "rewards/accuracy/mean": "acc",
    "rewards/consistency/mean": "cons",
    "kl": "kl",
    "loss": "loss",
    "completions/mean_length": "len",
}


class QuietProgress(TrainerCallback):
    """A tqdm bar over optimizer steps, named ``desc``, with the key metrics of the last log in its postfix."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs:
            return
        shown = {short: logs[key] for key, short in SHOWN.items() if isinstance(logs.get(key), int | float)}
        if shown:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def use_quiet_progress(trainer: Any, desc: str) -> None:
    """Replace the trainer's printing callbacks with :class:`QuietProgress` (a no-op for the metrics it logs)."""
    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(QuietProgress(desc))
