"""``grpo_lm`` end to end on a tiny LM: real TRL steps, a real sqlite MLflow store and registry."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]

TRAIN = ["vlm_descriptions", "base_lm", "training_set", "warm_lm", "grpo_lm"]


def _client(root, registry: bool = True) -> mlflow.MlflowClient:
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri if registry else None)


@pytest.mark.slow
def test_grpo_lm_trains_logs_to_mlflow_registers_and_resumes(tiny_pipeline):
    pipeline = tiny_pipeline(grpo={"num_generations": 2, "max_completion_length": 8, "max_steps": 2, "save_steps": 1})
    result = pipeline.materialize(TRAIN)
    assert result.success
    meta = result.asset_materializations_for_node("grpo_lm")[0].metadata
    assert meta["global_step"].value == 2 and meta["steps_this_run"].value == 2
    assert meta["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")

    root = pipeline.root
    pointer = json.loads((root / "data" / "models" / "grpo_lm.json").read_text())
    client = _client(root)
    run = client.get_run(pointer["run_id"])
    assert run.info.status == "FINISHED"
    warm = json.loads((root / "data" / "models" / "warm_lm.json").read_text())
    assert run.data.tags["embodied_r.initial_model"] == warm["path"], "GRPO starts from the cold-start model"
    assert run.data.params["params.grpo.num_generations"] == "2"
    history = client.get_metric_history(pointer["run_id"], "rewards/format/mean")
    assert len(history) == 2, "one format-reward point per step"
    assert client.get_metric_history(pointer["run_id"], "schedule/w_format")
    versions = client.search_model_versions("name='embodied-r-lm'")
    assert [str(v.version) for v in versions] == [pointer["version"]] == ["1"]
    assert (root / "mlruns" / "artifacts").is_dir(), "artifacts live under mlruns/"

    # Same data and settings: the training resumes from its last checkpoint instead of starting over.
    again = pipeline.materialize(["grpo_lm"])
    meta = again.asset_materializations_for_node("grpo_lm")[0].metadata
    assert "checkpoint-2" in meta["resumed_from"].value, meta["resumed_from"].value
    assert meta["steps_this_run"].value == 0, (meta["steps_this_run"].value, meta["global_step"].value)
    assert json.loads((root / "data" / "models" / "grpo_lm.json").read_text())["version"] == "2"


@pytest.mark.slow
def test_grpo_lm_trains_in_two_processes_with_torchrun(tiny_pipeline):
    """A params change, not a code change: the same asset launches DDP (gloo on CPU, one process per GPU)."""
    # dynamic sampling runs in one process only (the config refuses it with two)
    pipeline = tiny_pipeline(grpo={"launcher": "torchrun", "nproc_per_node": 2, "max_steps": 1, "dynamic_sampling": 0})
    result = pipeline.materialize(TRAIN)
    assert result.success
    meta = result.asset_materializations_for_node("grpo_lm")[0].metadata
    assert meta["world_size"].value == 2 and meta["global_step"].value == 1
    root = pipeline.root
    pointer = json.loads((root / "data" / "models" / "grpo_lm.json").read_text())
    ranks = sorted((root / ".cache" / "grpo" / pointer["training_key"] / "launch_ranks").glob("rank-*.json"))
    assert [json.loads(p.read_text()) for p in ranks] == [
        {"rank": 0, "world_size": 2},
        {"rank": 1, "world_size": 2},
    ]
    history = _client(root, registry=False).get_metric_history(pointer["run_id"], "rewards/format/mean")
    assert len(history) == 1, "the launched processes log into the asset's MLflow run"


#: Run in a real process by the kill test: materializes grpo_lm, and pauses inside the save of checkpoint-<step>
#: once its weights are written (optimizer, RNG states, trainer state and completion marker not yet), so that the
#: test's SIGKILL lands mid-save, with the writer lock held, the MLflow run RUNNING and the Dagster run STARTED.
KILLED_MATERIALIZATION = """
import os, sys, time
from pathlib import Path

import dagster as dg
from transformers import Trainer

go, ready, pause_step, root, dagster_home = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
save_optimizer = Trainer._save_optimizer_and_scheduler


def pause_mid_save(self, output_dir):
    if self.state.global_step == pause_step:
        ready.write_text(str(os.getpid()))
        time.sleep(600)
    return save_optimizer(self, output_dir)


Trainer._save_optimizer_and_scheduler = pause_mid_save

from orchestration.definitions import defs
from orchestration.resources import MlflowResource, ProjectResource

project = ProjectResource(root=root)
while not go.exists():  # imported while the test materializes the upstream assets
    time.sleep(0.1)
dg.materialize(
    [*defs.assets, *(defs.asset_checks or [])], selection=["grpo_lm"],
    instance=dg.DagsterInstance.from_config(dagster_home),
    resources={"project": project, "mlflow": MlflowResource(project=project)},
)
"""


@pytest.mark.slow
def test_a_killed_grpo_lm_is_refused_then_resumed_closed_and_continued(tiny_project, tiny_lm, tmp_path, caplog):
    """Issue 36, items 10-12, with a real SIGKILL to a real ``materialize grpo_lm`` process.

    The training rows are written as ``training_set`` writes them (the perception lineage above it is other
    tests'); ``base_lm`` and ``warm_lm`` (cold start off) are materialized on a persistent instance that the
    killed process shares.
    """
    import dagster as dg

    from embodied_r.models.tiny import write_tiny_rows
    from orchestration.definitions import defs
    from orchestration.resources import MlflowResource, ProjectResource

    root = tiny_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["lm"]["base"] = str(tiny_lm)
    params["cold_start"]["enabled"] = False
    params["grpo"].update(num_generations=2, max_completion_length=8, max_steps=4, save_steps=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    project = ProjectResource(root=str(root))
    layout = project.layout()
    layout.training_set.mkdir(parents=True)
    write_tiny_rows(layout.training_set / "train.jsonl")
    (layout.training_set / "val.jsonl").write_text("")
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.from_config(str(home))  # shared with the process below

    def materialize(selection: list[str], **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*defs.assets, *(defs.asset_checks or [])], selection=selection, instance=instance,
            resources={"project": project, "mlflow": MlflowResource(project=project)}, **kwargs,
        )  # fmt: skip

    script, go, ready, output = (tmp_path / name for name in ("materialize.py", "go", "ready", "killed.log"))
    script.write_text(KILLED_MATERIALIZATION)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{PROJECT_ROOT / 'src'}:{PROJECT_ROOT}"}
    with output.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(go), str(ready), "3", str(root), str(home)],
            cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert materialize(["base_lm", "warm_lm"]).success  # while the process imports
        go.touch()
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert proc.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, "the training never reached checkpoint-3"
            time.sleep(0.2)

        # Item 12: a second materialization of the same training while the first one runs is refused.
        second = materialize(["grpo_lm"], raise_on_error=False)
        assert not second.success
        failure = next(e for e in second.all_events if e.is_step_failure).step_failure_data
        refusal = failure.user_failure_data.description
        assert f"locked by grpo_lm training (pid {proc.pid} on host {socket.gethostname()}, started " in refusal
        assert "wait for that run to finish" in refusal.lower(), refusal
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    key = next((root / ".cache" / "grpo").iterdir())
    assert (key / "checkpoint-3" / "model.safetensors").is_file(), "killed mid-save: the weights, nothing after"
    assert not (key / "checkpoint-3" / "trainer_state.json").exists()
    killed_run = next(r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED)

    # Items 10 and 11: the next materialization takes the dead process's lock over, resumes from checkpoint-2
    # (the last complete one), closes the runs the kill left open and continues the curve in its own run.
    with caplog.at_level(logging.WARNING):
        third = materialize(["grpo_lm"])
    meta = third.asset_materializations_for_node("grpo_lm")[0].metadata
    assert meta["resumed_from"].value.endswith("checkpoint-2"), meta["resumed_from"].value
    assert (meta["global_step"].value, meta["steps_this_run"].value) == (4, 2)
    assert f"from grpo_lm training (pid {proc.pid} on host" in caplog.text and "that process is gone" in caplog.text
    assert "skipped checkpoint-3 (no completion marker" in caplog.text

    client = _client(root)
    pointer = json.loads((layout.models / "grpo_lm.json").read_text())
    experiment_id = client.get_run(pointer["run_id"]).info.experiment_id
    runs = client.search_runs([experiment_id], "tags.`embodied_r.stage` = 'grpo_lm'")
    assert len(runs) == 2, "the refused materialization opened no run"
    orphan = next(r for r in runs if r.info.run_id != pointer["run_id"])
    assert orphan.data.tags["dagster.run_id"] == killed_run.run_id
    assert orphan.info.status == "KILLED" and orphan.data.tags["embodied_r.resumed_by"] == pointer["run_id"]
    resumed = client.get_run(pointer["run_id"])
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["embodied_r.resumes_run"] == orphan.info.run_id
    assert resumed.data.tags["embodied_r.resume_step"] == "2"
    steps = [m.step for m in client.get_metric_history(pointer["run_id"], "rewards/format/mean")]
    assert sorted(steps) == [1, 2, 3, 4], "the whole curve, each step once, in the run that finished"
    assert instance.get_run_by_id(killed_run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert [str(v.version) for v in client.search_model_versions("name='embodied-r-lm'")] == ["1"]
    assert not (key / "writer.lock").read_text(), "released"
