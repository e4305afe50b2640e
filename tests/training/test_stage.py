"""The LM's library stages (:mod:`embodied_r.training.stage`) run without Dagster, on a real sqlite MLflow store."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from embodied_r.config import load_params
from embodied_r.data.records import dumps_canonical
from embodied_r.layout import Layout
from embodied_r.models.folders import DISABLED_FILE, dvc_md5, install_model
from embodied_r.models.pointers import BASE_LM_POINTER, SFT_LM_POINTER, WARM_LM_POINTER, read_pointer, write_pointer
from embodied_r.models.tiny import write_tiny_rows
from embodied_r.training.stage import RunHooks, grpo_training_key, train_sft, train_warm_start

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tiny_project: Path, tiny_lm: Path, monkeypatch: pytest.MonkeyPatch):
    """``project(**sections)``: params and layout of the tiny project, with the base LM pointer and training rows
    written as ``base_lm`` and ``training_set`` write them."""
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)

    def make(**sections: dict):
        data = yaml.safe_load((tiny_project / "params.yaml").read_text())
        data["lm"]["base"] = str(tiny_lm)
        for section, values in sections.items():
            data[section].update(values)
        (tiny_project / "params.yaml").write_text(yaml.safe_dump(data))
        params = load_params(tiny_project / "params.yaml")
        layout = Layout(root=tiny_project, data_dir=params.data_dir)
        install_model(tiny_lm, layout, "base_lm")  # as base_lm does: the pointer names the copy, from the root
        write_pointer(layout.models, BASE_LM_POINTER, {"source": str(tiny_lm), "path": "data/models/base_lm"})
        layout.training_set.mkdir(parents=True, exist_ok=True)
        write_tiny_rows(layout.training_set / "train.jsonl")
        write_tiny_rows(layout.training_set / "val.jsonl", n=2, split="val")
        return params, layout

    yield make
    mlflow.set_tracking_uri(None)


def test_the_stage_modules_import_neither_dagster_nor_orchestration():
    stages = ["training.stage", "evaluation.stage", "keyframes.stage", "perception.stage", "models.pointers"]
    code = (
        "import sys\n"
        + "".join(f"import embodied_r.{m}\n" for m in [*stages, "validation.recorded"])
        + "print(sorted(m for m in ('dagster', 'orchestration') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_switched_off_supervised_stages_pass_the_base_lm_through_without_a_run(project, tiny_lm):
    params, layout = project(cold_start={"enabled": False}, sft={"enabled": False})
    warm = train_warm_start(params, layout, RunHooks())
    sft = train_sft(params, layout, RunHooks())
    assert not warm.trained and not sft.trained
    base = "data/models/base_lm"
    assert read_pointer(layout.models, WARM_LM_POINTER) == {"enabled": False, "path": base, "base": base}
    assert read_pointer(layout.models, SFT_LM_POINTER) == {"enabled": False, "path": None}
    for stage in ("warm_lm", "sft_lm"):  # DVC outputs even when off: a folder that says why
        assert [p.name for p in (layout.models / stage).iterdir()] == [DISABLED_FILE]
    assert warm.metadata == {"cold_start": "disabled: GRPO starts from the base LM", "path": base}
    assert sft.metadata == {"sft": "disabled (sft.enabled: false)"}
    assert not (layout.root / "mlruns").exists(), "nothing trained, no MLflow run"


def test_the_grpo_training_key_still_names_the_existing_checkpoint_folders(project):
    """A rerun after the redesign resumes the checkpoints trained before it: the key is the same hash of hashes."""
    params, layout = project()
    write_pointer(layout.models, WARM_LM_POINTER, {"enabled": False, "path": "/lm", "base": "/lm"})
    settings = {k: params.model_dump(mode="json")[k] for k in ("grpo", "rewards", "lm", "training_set")}
    digest = hashlib.sha256()  # the formula grpo_lm used before (orchestration/assets/grpo.py training_key)
    parts = ((layout.training_set / "train.jsonl").read_bytes(), (layout.models / WARM_LM_POINTER).read_bytes())
    for part in (*parts, dumps_canonical(settings).encode()):
        digest.update(hashlib.sha256(part).digest())
    assert grpo_training_key(layout, settings) == digest.hexdigest()[:16]


@pytest.mark.slow
def test_the_cold_start_stage_trains_closes_a_killed_attempts_run_and_is_reused(project):
    params, layout = project(cold_start={"enabled": True, "save_steps": 1, "answer": "letter"})
    heard: list[tuple[list[str], int, str]] = []
    hooks = RunHooks(
        tags={"orchestrator.run_id": "r1"},
        on_orphans=lambda orphans, step, run_id: heard.append(([o["run_id"] for o in orphans], step, run_id)),
    )
    first = train_warm_start(params, layout, hooks)
    assert first.trained and first.metadata["steps"] == 2 and first.metadata["reused"] is False
    assert read_pointer(layout.models, WARM_LM_POINTER) == first.pointer
    # The model is a DVC output in data/models/warm_lm/, named from the root; the checkpoints stay in .cache/.
    assert first.pointer["path"] == "data/models/warm_lm" and first.pointer["base"] == "data/models/base_lm"
    output_dir = layout.root / ".cache" / "cold_start" / first.pointer["key"]
    assert dvc_md5(layout.models / "warm_lm") == dvc_md5(output_dir / "final")
    assert {"val_format_compliance", "val_accuracy", "val_answer_shares", "mlflow_run", "path"} <= set(first.metadata)
    client = mlflow.MlflowClient()
    run = client.get_run(first.pointer["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["orchestrator.run_id"] == "r1"
    assert run.data.tags["embodied_r.training_key"] == first.pointer["key"]

    # A killed attempt of the same training: its run left RUNNING, its final model never written.
    tags = {"embodied_r.stage": "cold_start", "embodied_r.training_key": first.pointer["key"]}
    orphan = client.create_run(run.info.experiment_id, tags=tags).info.run_id
    shutil.rmtree(output_dir / "final")
    (output_dir / "stage.json").unlink()
    second = train_warm_start(params, layout, hooks)
    assert heard == [([orphan], 2, second.pointer["run_id"])], "the orchestrator hears of the run it must close"
    assert client.get_run(orphan).info.status == "KILLED"
    assert second.metadata["resumed_from"].endswith("checkpoint-2")

    shutil.rmtree(layout.models / "warm_lm")  # as DVC removes a stage's outputs before it reruns the stage
    third = train_warm_start(params, layout, hooks)
    assert third.metadata["reused"] is True and third.pointer == second.pointer
    assert dvc_md5(layout.models / "warm_lm") == dvc_md5(output_dir / "final"), "reinstalled, not retrained"
    assert json.loads((output_dir / "stage.json").read_text())["run_id"] == second.pointer["run_id"]
