"""Checkpoints a kill cannot corrupt and one writer per checkpoint folder (issue 36, items 10 and 12).

Real TRL runs of the tiny offline LM; a checkpoint folder left exactly as a kill during its save leaves it (the
config written, ``model.safetensors`` cut off, no optimizer, no ``trainer_state.json``, no marker); real processes
holding the writer lock, killed with a real SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from embodied_r.training.checkpoints import (
    CHECKPOINT_COMPLETE,
    LOCK_FILE,
    RunLockedError,
    checkpoint_problem,
    last_complete_checkpoint,
    lock_holder,
    mark_complete,
    prune_checkpoints,
    run_lock,
)
from embodied_r.training.config import GrpoTrainingConfig
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.grpo import train_grpo
from embodied_r.training.supervised import ColdStartConfig, format_warmup_examples, train_supervised

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS_LOG = "embodied_r.training.checkpoints"


def half_written(complete: Path, step: int) -> Path:
    """``checkpoint-<step>`` next to ``complete`` as a kill in the middle of writing its weights leaves it."""
    folder = complete.parent / f"checkpoint-{step}"
    folder.mkdir()
    shutil.copy(complete / "config.json", folder)  # save_pretrained writes the config before the weights
    weights = (complete / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    return folder


def starts_with_think(completions, **kwargs):
    return [float(str(c).startswith("<think>")) for c in completions]


class Always:
    def weights_at(self, epoch=None, step_fraction=None):
        return (1.0, 0.0, 0.0)


def grpo(tiny_lm: Path, rows: Path, out: Path, max_steps: int):
    cfg = GrpoTrainingConfig(
        num_generations=2, prompts_per_step=2, max_completion_length=8, precision="fp32",
        max_steps=max_steps, save_steps=1, log_completions_n=0,
    )  # fmt: skip
    return train_grpo(tiny_lm, rows, out, cfg, [starts_with_think], ["format"], Always())


def hold_lock_in_a_process(folder: Path, purpose: str = "grpo_lm training") -> subprocess.Popen:
    """A real process that takes ``folder``'s writer lock and sleeps; returns once it holds it."""
    code = (
        "import sys, time\n"
        "from embodied_r.training.checkpoints import run_lock\n"
        f"with run_lock({str(folder)!r}, {purpose!r}):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# ---------------------------------------------------------------------------------------------------------------------
# Item 10: a half-written checkpoint never blocks a rerun
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_grpo_resumes_from_the_last_complete_checkpoint_past_a_half_written_one(
    tiny_lm: Path, tiny_rows: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    first = grpo(tiny_lm, tiny_rows, out, max_steps=2)
    assert first.global_step == 2
    assert checkpoint_problem(out / "checkpoint-2") is None, "every checkpoint is marked complete once saved"
    half = half_written(out / "checkpoint-2", 3)  # killed while saving step 3
    assert "no completion marker" in checkpoint_problem(half)

    # Before: transformers' get_last_checkpoint picked checkpoint-3 and every rerun failed with SafetensorError.
    with caplog.at_level(logging.WARNING, logger=CHECKPOINTS_LOG):
        second = grpo(tiny_lm, tiny_rows, out, max_steps=4)
    assert second.resumed_from == str(out / "checkpoint-2")
    assert (second.global_step, second.steps_this_run) == (4, 2)
    assert "resuming from checkpoint-2, the last complete checkpoint; skipped checkpoint-3 (no completion marker" in (
        caplog.text
    )
    # Step 3 was trained again and saved whole; save_total_limit (2) kept the two newest.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert checkpoint_problem(out / "checkpoint-3") is None


@pytest.mark.slow
def test_supervised_training_resumes_past_a_half_written_checkpoint(
    tiny_lm: Path, tiny_rows: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    examples = format_warmup_examples(read_training_rows(tiny_rows), n=8, seed=0)
    cfg = ColdStartConfig(enabled=True, max_steps=2, batch_size=4, micro_batch_size=2, precision="fp32", save_steps=1)
    train_supervised(tiny_lm, examples, tmp_path, cfg, purpose="cold_start")
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-2"], "one kept, rotated once marked"
    half_written(tmp_path / "checkpoint-2", 3)

    with caplog.at_level(logging.WARNING, logger=CHECKPOINTS_LOG):
        again = train_supervised(tiny_lm, examples, tmp_path, cfg.model_copy(update={"max_steps": 3}), purpose="cs")
    assert again.resumed_from == str(tmp_path / "checkpoint-2") and again.global_step == 3
    assert "skipped checkpoint-3 (no completion marker" in caplog.text
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-3"]
    assert checkpoint_problem(tmp_path / "checkpoint-3") is None


def test_a_checkpoint_is_complete_only_with_its_marker_and_the_sizes_it_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-5"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 100)
    (folder / "trainer_state.json").write_text("{}")
    assert "no completion marker" in checkpoint_problem(folder), "complete-looking, but the save never finished"
    mark_complete(folder, 5)
    assert checkpoint_problem(folder) is None
    assert json.loads((folder / CHECKPOINT_COMPLETE).read_text())["files"] == {
        "model.safetensors": 100,
        "trainer_state.json": 2,
    }
    (folder / "model.safetensors").write_bytes(b"x" * 50)
    assert checkpoint_problem(folder) == "model.safetensors has 50 bytes, 100 when it was saved"
    (folder / "model.safetensors").unlink()
    assert checkpoint_problem(folder) == "model.safetensors is missing"
    (folder / CHECKPOINT_COMPLETE).write_text('{"files": ')
    assert checkpoint_problem(folder) == f"{CHECKPOINT_COMPLETE} is unreadable"


def test_pruning_keeps_the_newest_complete_checkpoints_and_drops_incomplete_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for step in (1, 2, 3, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if step in (1, 2, 4):
            mark_complete(tmp_path / f"checkpoint-{step}", step)
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert "skipped checkpoint-6 (no completion marker" in caplog.text
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    prune_checkpoints(tmp_path, keep=None)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    for folder in tmp_path.glob("checkpoint-*"):
        (folder / CHECKPOINT_COMPLETE).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) is None
    assert "no complete checkpoint" in caplog.text and "training starts over" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# Item 12: one writer per checkpoint folder
# ---------------------------------------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "grpo" / "key"
    holder = hold_lock_in_a_process(folder)
    try:
        record = lock_holder(folder)
        assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
        with pytest.raises(RunLockedError) as refused, run_lock(folder, "GRPO training"):
            pytest.fail("a second writer got the lock")
        message = str(refused.value)
        assert f"grpo_lm training (pid {holder.pid} on host {socket.gethostname()}, started {record['started']})" in (
            message
        )
        assert f"kill {holder.pid}" in message and "released as soon as that process ends" in message
    finally:
        kill(holder)  # SIGKILL: no chance to clean its record up

    assert lock_holder(folder) is None, "the kernel released the dead process's lock"
    with caplog.at_level(logging.WARNING, logger=CHECKPOINTS_LOG), run_lock(folder, "GRPO training") as mine:
        assert mine["pid"] == os.getpid() and lock_holder(folder)["pid"] == os.getpid()
    assert f"taking over the lock of {folder} from grpo_lm training (pid {holder.pid} on host" in caplog.text
    assert "that process is gone (killed?)" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=CHECKPOINTS_LOG), run_lock(folder):
        pass
    assert "taking over" not in caplog.text, "a lock released cleanly leaves no record behind"
    assert (folder / LOCK_FILE).read_text() == ""


def test_the_lock_is_reentrant_in_its_thread_only(tmp_path: Path) -> None:
    refused: list[Exception] = []

    def other_thread() -> None:
        try:
            with run_lock(tmp_path):
                pass
        except RunLockedError as exc:
            refused.append(exc)

    with run_lock(tmp_path, "outer") as outer:
        with run_lock(tmp_path, "inner") as inner:  # an asset holding it calls a trainer that takes it too
            assert inner is outer
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(refused) == 1 and f"outer (pid {os.getpid()}" in str(refused[0])
    with run_lock(tmp_path):  # released once the outermost block ends
        pass


@pytest.mark.slow
def test_training_into_a_folder_another_process_writes_is_refused(
    tiny_lm: Path, tiny_rows: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    holder = hold_lock_in_a_process(out, "cold_start training")
    try:
        started = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"cold_start training \(pid {holder.pid} on host"):
            grpo(tiny_lm, tiny_rows, out, max_steps=1)
        examples = format_warmup_examples(read_training_rows(tiny_rows), n=4, seed=0)
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid}"):
            train_supervised(tiny_lm, examples, out, ColdStartConfig(enabled=True, max_steps=1), purpose="cold_start")
        assert time.monotonic() - started < 20, "refused before loading anything"
        assert not list(out.glob("checkpoint-*")) and not (out / "final").exists()
    finally:
        kill(holder)
