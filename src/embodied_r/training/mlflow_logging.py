"""GRPO's MLflow logging: into the caller's run, never a run of its own, and a table of sampled completions.

The caller creates the run and passes its id; :func:`~embodied_r.training.grpo.train_grpo` never starts a run of
its own. Metrics go through transformers' ``MLflowCallback`` (added explicitly, with ``report_to="none"``:
``report_to="mlflow"`` would also make TRL write a timing metric per profiled call synchronously, ~50 ms a step on
sqlite). In ``on_train_begin`` that callback starts a run unless one is active — a new one, or a *nested* one —
unless ``MLFLOW_RUN_ID`` is set, in which case it re-opens that run. So, for the duration of training,
:func:`mlflow_run_env` exports ``MLFLOW_RUN_ID`` (and ``MLFLOW_TRACKING_URI``, so a ``torchrun`` rank or a fresh
process finds the same store) and clears ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_NESTED_RUN``. If the caller's run is
already *active* in this thread, ``MLFLOW_RUN_ID`` is left unset and the callback simply logs into the active run
(re-opening it would raise). Either way the per-step metrics (``rewards/<name>/mean``, ``reward``, ``kl``,
``completions/mean_length``, ``schedule/w_<name>``, …), TRL's arguments as params and the ``completions.json``
table (:class:`CompletionTableCallback`) all land in the caller's run. When the callback re-opened the run it also
ends it (status FINISHED) at the end of training — FAILED if training raised — and is then detached
(:func:`release_mlflow_callback`); logging to the run afterwards still works. A resumed run does not log TRL's
arguments again (MLflow refuses changed param values, e.g. a new ``max_steps``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import MLflowCallback

_MLFLOW_ENV = (
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_NESTED_RUN",
    "MLFLOW_MAX_LOG_PARAMS",
)


@contextmanager
def mlflow_run_env(run_id: str | None) -> Iterator[None]:
    """Point transformers' ``MLflowCallback`` at the existing run ``run_id`` while training (module docstring)."""
    if run_id is None:
        yield
        return
    import mlflow

    saved = {key: os.environ.get(key) for key in _MLFLOW_ENV}
    active = mlflow.active_run()
    if active is not None and active.info.run_id != run_id:
        raise ValueError(f"MLflow run {active.info.run_id} is active in this thread; cannot log into run {run_id}")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    os.environ.pop("MLFLOW_NESTED_RUN", None)
    if "num_generations" in mlflow.MlflowClient().get_run(run_id).data.params:
        # A resumed run: TRL's arguments were logged by the first attempt, and MLflow refuses changed values.
        os.environ["MLFLOW_MAX_LOG_PARAMS"] = "0"
    if active is None:
        os.environ["MLFLOW_RUN_ID"] = run_id
    else:  # the callback logs into the active run; setting MLFLOW_RUN_ID would make it re-open it and fail
        os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def release_mlflow_callback(trainer: Any, *, failed: bool) -> None:
    """Detach transformers' ``MLflowCallback`` from ``trainer`` once training is over.

    The callback ends the run it (re-)opened in ``on_train_end`` — and again in ``__del__``, i.e. whenever the
    trainer happens to be garbage-collected, ending whatever run is active *then* (the caller's next run).
    Here its run is ended now (FAILED if training raised) and the callback is disarmed and dropped.
    """
    for callback in list(trainer.callback_handler.callbacks):
        if not isinstance(callback, MLflowCallback):
            continue
        if callback._auto_end_run:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.end_run(status="FAILED" if failed else "FINISHED")
            callback._auto_end_run = False
        trainer.remove_callback(callback)


class CompletionTableCallback(TrainerCallback):
    """Samples ``n`` completions per logging step into the MLflow table ``completions.json`` of ``run_id``.

    Reads the batch TRL keeps for its own completion logging (``GRPOTrainer._logs``: prompts, completions, the
    reward of each function and the advantage of the last generation batch, gathered over processes) and
    appends rows ``step, prompt, completion, <reward name>..., advantage`` with ``mlflow.log_table`` at each
    checkpoint and at the end of training. The prompt column holds the tail of the last user message (the
    question and choices); ``prefix`` (the think prefill) is put back in front of each completion.
    """

    def __init__(
        self,
        trainer: Any,
        run_id: str,
        n: int,
        prefix: str = "",
        artifact_file: str = "completions.json",
        max_prompt_chars: int = 2000,
    ) -> None:
        self.trainer = trainer
        self.run_id = run_id
        self.n = n
        self.prefix = prefix
        self.artifact_file = artifact_file
        self.max_prompt_chars = max_prompt_chars
        self.rows: list[dict[str, Any]] = []
        self._last_step = -1

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        batch = getattr(self.trainer, "_logs", None)
        if not state.is_world_process_zero or not batch or not batch["prompt"] or state.global_step == self._last_step:
            return
        self._last_step = state.global_step
        prompts, completions = list(batch["prompt"]), list(batch["completion"])
        rewards = {name: list(values) for name, values in batch["rewards"].items()}
        advantages = list(batch["advantages"])
        count = min(self.n, len(prompts))
        # Spread over the batch: consecutive completions share a prompt.
        for i in sorted({round(k * (len(prompts) - 1) / max(count - 1, 1)) for k in range(count)}):
            row: dict[str, Any] = {
                "step": state.global_step,
                "prompt": _prompt_text(prompts[i])[-self.max_prompt_chars :],
                "completion": self.prefix + _completion_text(completions[i]),
            }
            row.update({name: _float(values[i]) for name, values in rewards.items() if i < len(values)})
            row["advantage"] = _float(advantages[i]) if i < len(advantages) else None
            self.rows.append(row)

    def flush(self) -> None:
        """Append the buffered rows to the run's table."""
        if not self.rows:
            return
        import mlflow

        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        mlflow.log_table(
            {c: [row.get(c) for row in self.rows] for c in columns}, self.artifact_file, run_id=self.run_id
        )
        self.rows.clear()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.flush()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.flush()


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
    return str(users[-1]) if users else str(prompt)


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content", "")) for m in completion if m.get("role") == "assistant")


def _float(value: Any) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN (a None reward) → null in the table


__all__ = ["CompletionTableCallback", "mlflow_run_env", "release_mlflow_callback"]
