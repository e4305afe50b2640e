"""GRPO training: config, the weight schedule inside a real run, think prefill, resume, MLflow, two processes.

Every run is a few real TRL GRPO steps of the tiny offline model (``conftest.py``) on 8 rows with 2 completions
of at most 8 tokens. Rewards and schedule are the tests' own, so these tests do not depend on the rewards module
(the two-process run goes through the command line and the real ``embodied_r.rewards``; the zero-variance test
takes the project's ``RewardSchedule``, whose normalised paper weights are what TRL rounds).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from embodied_r.rewards.schedule import weights_for
from embodied_r.training.config import THINK_PREFILL, GrpoTrainingConfig, resolve_bf16
from embodied_r.training.grpo import run_length, train_grpo
from embodied_r.training.mlflow_logging import mlflow_run_env
from embodied_r.training.think_prefill import prepend, trl_reward_func, with_think_prefill

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _text(completion: Any) -> str:
    return completion if isinstance(completion, str) else completion[0]["content"]


def think_start(completions: list[Any], **kwargs: Any) -> list[float]:
    """Format-like: 1 when the completion starts with <think>."""
    return [float(_text(c).startswith(THINK_PREFILL)) for c in completions]


def length(completions: list[Any], solution: list[str], **kwargs: Any) -> list[float]:
    """Length-like (and proof that dataset columns arrive): characters / 50."""
    assert len(solution) == len(completions)
    return [len(_text(c)) / 50 for c in completions]


class StepSchedule:
    """Format only before ``switch`` of the run, accuracy only from then on."""

    def __init__(self, switch: float = 0.5) -> None:
        self.switch = switch

    def weights_at(self, epoch: float | None = None, step_fraction: float | None = None) -> tuple[float, float, float]:
        assert step_fraction is not None
        return (1.0, 0.0, 0.0) if step_fraction < self.switch else (0.0, 1.0, 0.0)


def tiny_cfg(**overrides: Any) -> GrpoTrainingConfig:
    base = {
        "num_generations": 2,
        "prompts_per_step": 2,
        "max_completion_length": 8,
        "precision": "fp32",
        "max_steps": 2,
        "save_steps": 100,
        "log_completions_n": 2,
    }
    return GrpoTrainingConfig(**{**base, **overrides})


def train(tiny_lm: Path, rows: Path, out: Path, cfg: GrpoTrainingConfig, schedule: Any = None, **kwargs: Any) -> Any:
    return train_grpo(
        tiny_lm, rows, out, cfg, [think_start, length], ["format", "accuracy"], schedule or StepSchedule(), **kwargs
    )


def logged(out: Path, key: str) -> dict[int, float]:
    """``key`` per step from the trainer state saved in ``out``."""
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry[key] for entry in history if key in entry}


# ---------------------------------------------------------------------------------------------------------------------
# Configuration and helpers (fast)
# ---------------------------------------------------------------------------------------------------------------------


def test_defaults_are_the_papers_hyper_parameters() -> None:
    cfg = GrpoTrainingConfig()
    assert (cfg.learning_rate, cfg.warmup_ratio, cfg.num_generations, cfg.beta) == (5e-7, 0.05, 8, 0.001)
    assert (cfg.temperature, cfg.prompts_per_step, cfg.max_completion_length, cfg.epochs) == (1.0, 4, 2048, 12)
    assert cfg.precision == "auto" and cfg.max_steps is None and not cfg.gradient_checkpointing
    assert (cfg.entropy_coef, cfg.top_entropy_quantile, cfg.dynamic_sampling) == (0.0, 1.0, 0)  # no extra terms
    assert cfg.shared_prompt and cfg.skip_flat_batches  # speed-ups with the paper's math (same loss, same weights)
    with pytest.raises(ValidationError):
        GrpoTrainingConfig(max_prompt_length=6144)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        cfg.seed = 1  # type: ignore[misc]


def test_batch_geometry_counts_completions() -> None:
    cfg = GrpoTrainingConfig()  # 4 prompts × 8 completions = 32 per step
    assert cfg.batch_geometry(8) == (4, 1)
    assert cfg.batch_geometry(1) == (32, 1)
    assert GrpoTrainingConfig(per_device_batch_size=4).batch_geometry(2) == (4, 4)
    with pytest.raises(ValueError, match="cannot be split"):
        GrpoTrainingConfig(per_device_batch_size=3).batch_geometry(1)


def test_precision() -> None:
    assert resolve_bf16("bf16") is True
    assert resolve_bf16("fp32") is False
    assert isinstance(resolve_bf16("auto"), bool)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(True, False, False), (True, True, True), (False, False, False)],
)
def test_auto_precision_takes_bf16_on_a_cpu_only_with_amx(monkeypatch, avx512_bf16, amx, expected) -> None:
    # AVX512-BF16 without AMX computes bf16 more slowly than fp32 (measured: docstring of cpu_has_fast_bf16)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert resolve_bf16("auto") is expected
    assert resolve_bf16("bf16") is True  # asked for explicitly, it is honoured


def test_weights_follow_reward_names() -> None:
    schedule = StepSchedule()
    assert weights_for(schedule, ["format", "accuracy"], 0.0, 0.0) == [1.0, 0.0]
    assert weights_for(schedule, ["accuracy", "format"], 0.0, 0.9) == [1.0, 0.0]
    with pytest.raises(ValueError, match="not in the schedule"):
        weights_for(schedule, ["length"], 0.0, 0.0)


def test_think_prefill_ends_the_generation_prompt(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    tokenizer.chat_template = with_think_prefill(tokenizer.chat_template)
    messages = [{"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>")
    assert THINK_PREFILL not in tokenizer.apply_chat_template(messages, tokenize=False)
    with pytest.raises(ValueError, match="chat template"):
        with_think_prefill(None)


def test_rewards_see_the_prefill_under_their_schedule_name() -> None:
    wrapped = trl_reward_func(think_start, "format", THINK_PREFILL)
    assert wrapped.__name__ == "format"
    conversational = [[{"role": "assistant", "content": " x </think><answer>A</answer>"}]]
    assert wrapped(completions=conversational, solution=["A"]) == [1.0]
    assert wrapped(completions=["plain"], solution=["A"]) == [1.0]
    assert conversational[0][0]["content"].startswith(" x")  # the caller's completions are not mutated
    assert prepend("b", "a") == "ab"
    assert trl_reward_func(think_start, "think_start") is think_start


def test_mlflow_env_points_at_the_run_and_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "other")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        client = mlflow.MlflowClient()
        run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri()))
        with mlflow_run_env(run.info.run_id):
            assert os.environ["MLFLOW_RUN_ID"] == run.info.run_id
            assert "MLFLOW_EXPERIMENT_NAME" not in os.environ
            assert os.environ["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
        assert "MLFLOW_RUN_ID" not in os.environ and os.environ["MLFLOW_EXPERIMENT_NAME"] == "other"
        with (
            mlflow.start_run(experiment_id=run.info.experiment_id),
            pytest.raises(ValueError, match="is active"),
            mlflow_run_env(run.info.run_id),
        ):
            pass
    finally:
        mlflow.set_tracking_uri(None)


# ---------------------------------------------------------------------------------------------------------------------
# Real GRPO runs (slow)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_schedule_switches_mid_run_and_the_weights_are_applied(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    outcome = train(tiny_lm, tiny_rows, out, tiny_cfg(max_steps=4, think_prefill=True))

    assert outcome.global_step == 4 and outcome.steps_this_run == 4 and outcome.resumed_from is None
    # Steps 1–2 (progress 0, 1/4) weigh the format reward, steps 3–4 (2/4, 3/4) the accuracy one.
    assert logged(out, "schedule/w_format") == {1: 1.0, 2: 1.0, 3: 0.0, 4: 0.0}
    assert logged(out, "schedule/w_accuracy") == {1: 0.0, 2: 0.0, 3: 1.0, 4: 1.0}
    assert outcome.final_weights == [0.0, 1.0]
    # The weights TRL used: the logged total reward is the weighted sum of the per-reward means.
    fmt, acc, total = logged(out, "rewards/format/mean"), logged(out, "rewards/accuracy/mean"), logged(out, "reward")
    for step in range(1, 5):
        w_f = 1.0 if step <= 2 else 0.0
        assert total[step] == pytest.approx(w_f * fmt[step] + (1 - w_f) * acc[step], abs=1e-5)
    # The prefilled <think> is part of what the rewards see.
    assert set(fmt.values()) == {1.0}

    final = Path(outcome.final_model_path)
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    assert json.loads((final / "grpo_training.json").read_text())["think_prefill"] == THINK_PREFILL
    assert outcome.seconds_per_step > 0 and "kl" in outcome.metrics and "completions/mean_length" in outcome.metrics


def test_run_length_names_the_unit_that_decides_it() -> None:
    """The log said "max_steps=120, epochs=12" for a run of 120 prompts over 705 rows: 0.17 epochs, not 12."""
    capped = GrpoTrainingConfig(max_steps=120, prompts_per_step=1, num_generations=8)
    assert run_length(capped, 705) == "max_steps=120 (0.17 epochs of 705 rows; overrides epochs=12)"
    assert run_length(GrpoTrainingConfig(epochs=2, prompts_per_step=4), 10) == "epochs=2 (≈ 5 steps)"


def test_beta_zero_trains_without_a_reference_model(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    """cpu-long's beta 0 (paper: 0.001): TRL loads no reference model and logs no KL, and the run still trains."""
    from safetensors.torch import load_file

    before = load_file(str(tiny_lm / "model.safetensors"))
    outcome = train(tiny_lm, tiny_rows, tmp_path / "run", tiny_cfg(max_steps=2, beta=0.0, learning_rate=1e-3))
    assert outcome.global_step == 2 and "kl" not in outcome.metrics
    after = load_file(str(Path(outcome.final_model_path) / "model.safetensors"))
    assert any(not (before[k] == after[k]).all() for k in before if k in after)


def always_one(completions: list[Any], **kwargs: Any) -> list[float]:
    return [1.0] * len(completions)


def always_zero(completions: list[Any], **kwargs: Any) -> list[float]:
    return [0.0] * len(completions)


@pytest.mark.parametrize("components", ["default", "paper"])
def test_groups_with_equal_rewards_have_no_advantage_and_are_counted(
    tiny_lm: Path, tiny_rows: Path, tmp_path: Path, components: str
) -> None:
    """Every completion earns 0.3 · 1 + 0.7 · 0 (8 a group): no group has variance, so nothing may train.

    Plain TRL 1.16 logs ``frac_reward_zero_std`` 0 here and moves the weights (a uniform ≈ 3e-4 advantage from its
    float32 group mean); the project's trainer zeroes those advantages and counts the groups — the paper's trainer
    alone too (no component on: the flat batches are not skipped, their zero advantages keep the weights).
    """
    from safetensors.torch import load_file

    from embodied_r.rewards.config import RewardSchedule

    # The paper's second stage, 3:7:0, normalised by the project's schedule to 0.3 / 0.7: not binary fractions.
    papers_weights = RewardSchedule.model_validate([{"until_fraction": 1.0, "weights": [3, 7, 0]}])
    out = tmp_path / "run"
    paper = {"shared_prompt": False, "skip_flat_batches": False} if components == "paper" else {}
    cfg = tiny_cfg(num_generations=8, max_steps=2, beta=0.0, learning_rate=1e-2, log_completions_n=0, **paper)
    outcome = train_grpo(tiny_lm, tiny_rows, out, cfg, [always_one, always_zero], ["format", "accuracy"],
                         papers_weights, resume=False)  # fmt: skip
    assert logged(out, "frac_reward_zero_std") == {1: 1.0, 2: 1.0}
    assert logged(out, "reward") == {1: pytest.approx(0.3), 2: pytest.approx(0.3)}
    before = load_file(str(tiny_lm / "model.safetensors"))
    after = load_file(str(Path(outcome.final_model_path) / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before if k in after)


def vowel_share(completion: Any) -> float:
    text = _text(completion)
    return sum(ch in "aeiou" for ch in text) / max(len(text), 1)


def vowels(completions: list[Any], **kwargs: Any) -> list[float]:
    return [vowel_share(c) for c in completions]


def consonants(completions: list[Any], **kwargs: Any) -> list[float]:
    return [1 - vowel_share(c) for c in completions]


@pytest.mark.slow
def test_grpo_moves_the_policy_towards_the_reward_it_is_given(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    """The direction of learning, end to end: the same start trained 30 steps on opposite rewards ends apart.

    The share of vowels in the completions is the measure; one run rewards it, the other its complement. A sign or
    advantage error in the training path (the shared-prompt loss included) would not pull them apart like this
    (measured, seeds 0-2: the rewarded run ends at 0.24-0.28, the penalised one at 0.14-0.17, from ≈ 0.2).
    """
    ends = {}
    for func in (vowels, consonants):
        out = tmp_path / func.__name__
        cfg = tiny_cfg(
            num_generations=4, max_steps=30, beta=0.0, learning_rate=1e-2, think_prefill=False, log_completions_n=0
        )
        format_throughout = StepSchedule(switch=float("inf"))
        train_grpo(tiny_lm, tiny_rows, out, cfg, [func], ["format"], format_throughout, resume=False)
        reward = list(logged(out, "rewards/format/mean").values())
        share = reward if func is vowels else [1 - r for r in reward]
        ends[func.__name__] = (sum(share[:5]) / 5, sum(share[-5:]) / 5)
    (v_start, v_end), (c_start, c_end) = ends["vowels"], ends["consonants"]
    assert v_start == pytest.approx(c_start, abs=0.05)  # the same model at the start
    assert v_end > v_start and c_end < c_start
    assert v_end - c_end > 0.05, ends


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    schedule = StepSchedule(switch=0.6)  # 2 steps of 2: never switches; step 3 of 3 (progress 2/3) does
    first = train(tiny_lm, tiny_rows, out, tiny_cfg(max_steps=2, save_steps=1), schedule)
    assert first.global_step == 2 and (out / "checkpoint-2").is_dir()
    assert logged(out, "schedule/w_format") == {1: 1.0, 2: 1.0}

    second = train(tiny_lm, tiny_rows, out, tiny_cfg(max_steps=3, save_steps=1), schedule)
    assert second.resumed_from is not None and second.resumed_from.endswith("checkpoint-2")
    assert (second.global_step, second.steps_this_run) == (3, 1)
    # The schedule state follows the checkpoint: the resumed step is in the second stage.
    assert logged(out, "schedule/w_format") == {1: 1.0, 2: 1.0, 3: 0.0}
    assert second.final_weights == [0.0, 1.0]

    fresh = train(tiny_lm, tiny_rows, out, tiny_cfg(max_steps=1), schedule, resume=False)
    assert fresh.resumed_from is None and fresh.global_step == 1


@pytest.mark.slow
def test_mlflow_logs_into_the_callers_run(
    tiny_lm: Path, tiny_rows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd

    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        client = mlflow.MlflowClient()
        experiment = client.create_experiment("grpo", artifact_location=(tmp_path / "artifacts").as_uri())
        run_id = client.create_run(experiment, run_name="train").info.run_id

        train(tiny_lm, tiny_rows, tmp_path / "a", tiny_cfg(max_steps=2), mlflow_run_id=run_id)

        for key in (
            "rewards/format/mean",
            "rewards/accuracy/mean",
            "schedule/w_format",
            "kl",
            "completions/mean_length",
        ):
            assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2], key
        assert [m.value for m in client.get_metric_history(run_id, "schedule/w_format")] == [1.0, 0.0]
        run = client.get_run(run_id)
        assert run.info.run_name == "train" and run.data.params["num_generations"] == "2"
        table = pd.read_json(client.download_artifacts(run_id, "completions.json", str(tmp_path)), orient="split")
        assert {"step", "prompt", "completion", "format", "accuracy", "advantage"} <= set(table.columns)
        assert sorted(set(table["step"])) == [1, 2] and len(table) == 4

        # The caller's run may also be active: it stays active, also once the trainer is garbage-collected.
        with mlflow.start_run(experiment_id=experiment, run_name="active") as active:
            train(tiny_lm, tiny_rows, tmp_path / "b", tiny_cfg(max_steps=1), mlflow_run_id=active.info.run_id)
            gc.collect()
            assert mlflow.active_run() is not None and mlflow.active_run().info.run_id == active.info.run_id
        assert len(client.get_metric_history(active.info.run_id, "rewards/format/mean")) == 1

        # No run of its own, nested or not.
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert sorted(r.info.run_name for r in client.search_runs(experiments)) == ["active", "train"]
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_two_processes_with_gloo(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    rewards = tmp_path / "rewards.json"
    schedule = [{"until_fraction": 0.5, "weights": [1, 0, 0]}, {"until_fraction": 1.0, "weights": [0, 1, 0]}]
    rewards.write_text(json.dumps({"judge": {"backend": "none"}, "schedule": schedule}))
    out = tmp_path / "dist"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "embodied_r.training.launch",
        "--model", str(tiny_lm), "--rows", str(tiny_rows), "--out", str(out), "--rewards", str(rewards),
        "--max-steps", "2", "--num-generations", "2", "--prompts-per-step", "2",
        "--max-completion-length", "8", "--precision", "fp32",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = sorted(json.loads(p.read_text())["rank"] for p in (out / "launch_ranks").glob("rank-*.json"))
    assert ranks == [0, 1]
    assert {json.loads(p.read_text())["world_size"] for p in (out / "launch_ranks").glob("*.json")} == {2}
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["world_size"] == 2 and outcome["global_step"] == 2
    assert outcome["reward_names"] == ["format", "accuracy"] and outcome["final_weights"] == [0.0, 1.0]


@pytest.mark.slow
def test_a_launched_failure_reports_its_cause(tiny_lm: Path, tmp_path: Path) -> None:
    """A process that fails under torchrun: the error ``run_launched`` raises ends with that process's exception
    (its traceback through the launcher's error file), not only the launcher's own summary."""
    from embodied_r.rewards import RewardsConfig
    from embodied_r.training.launch import run_launched

    cfg = GrpoTrainingConfig(launcher="torchrun", nproc_per_node=2, max_steps=1, num_generations=2)
    missing = tmp_path / "no-such-rows.jsonl"
    with pytest.raises(RuntimeError, match=r"torchrun training failed") as err:
        run_launched(cfg, RewardsConfig(), model=tiny_lm, rows=missing, out=tmp_path / "out")
    assert f"FileNotFoundError: Unable to find '{missing}'" in str(err.value)
