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

from embodied_r.models.folders import dvc_md5

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
    # MLflow and DVC agree: registered from data/models/grpo_lm (a DVC output), tagged with its DVC hash and commit
    assert pointer["path"] == "data/models/grpo_lm"
    tags = versions[0].tags
    assert tags["embodied_r.model_md5"] == dvc_md5(root / pointer["path"])
    assert tags["embodied_r.registered_by"] == "grpo_lm"
    assert tags["embodied_r.model_path"] == pointer["path"] and tags["git.commit"] and tags["git.dirty"]
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
    from embodied_r.training.checkpoints import checkpoint_problem

    checkpoint = root / ".cache" / "grpo" / pointer["training_key"] / "checkpoint-1"
    assert checkpoint_problem(checkpoint) is None, "marked complete once both processes saved their part"
    assert (checkpoint / "rng_state_1.pth").is_file()


#: Run in a real process by the kill tests: materializes one asset, and pauses inside the save of
#: checkpoint-<step> once its weights are written (optimizer, RNG states, trainer state and completion marker not
#: yet), so that the test's SIGKILL lands mid-save, with the writer lock held, the MLflow run RUNNING and the Dagster
#: run STARTED. It imports while the test prepares the upstream, then waits for the file ``go``.
KILLED_MATERIALIZATION = """
import os, sys, time
from pathlib import Path

import dagster as dg
from transformers import Trainer

go, ready, pause_step, root, dagster_home, asset = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
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
while not go.exists():
    time.sleep(0.1)
dg.materialize(
    [*defs.assets, *(defs.asset_checks or [])], selection=[asset],
    instance=dg.DagsterInstance.from_config(dagster_home),
    resources={"project": project, "mlflow": MlflowResource(project=project)},
)
"""


class KilledMaterialization:
    """A training project on a persistent Dagster instance, and a real process materializing ``asset`` in it.

    The training rows are written as ``training_set`` writes them (the perception lineage above it is other
    tests'); :meth:`materialize` runs a selection in this process on the same instance.
    """

    def __init__(self, root: Path, tiny_lm: Path, tmp: Path, asset: str, pause_step: int, **sections: dict) -> None:
        import dagster as dg

        from embodied_r.models.tiny import write_tiny_rows
        from orchestration.resources import MlflowResource, ProjectResource

        params = yaml.safe_load((root / "params.yaml").read_text())
        params["lm"]["base"] = str(tiny_lm)
        for section, values in sections.items():
            params[section].update(values)
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        self.root, self.asset = root, asset
        self.project = ProjectResource(root=str(root))
        self.layout = self.project.layout()
        self.layout.training_set.mkdir(parents=True)
        write_tiny_rows(self.layout.training_set / "train.jsonl")
        (self.layout.training_set / "val.jsonl").write_text("")
        home = tmp / "dagster_home"
        home.mkdir()
        self.instance = dg.DagsterInstance.from_config(str(home))
        self.resources = {"project": self.project, "mlflow": MlflowResource(project=self.project)}
        script, self.go, self.ready, self.output = (tmp / n for n in ("materialize.py", "go", "ready", "killed.log"))
        script.write_text(KILLED_MATERIALIZATION)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{PROJECT_ROOT / 'src'}:{PROJECT_ROOT}"}
        argv = [sys.executable, script, self.go, self.ready, str(pause_step), root, home, asset]
        with self.output.open("w") as log_file:
            self.proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def materialize(self, selection: list[str], **kwargs):
        import dagster as dg

        from orchestration.definitions import defs

        assets = [*defs.assets, *(defs.asset_checks or [])]
        return dg.materialize(assets, selection=selection, instance=self.instance, resources=self.resources, **kwargs)

    def start(self, upstream: list[str]) -> None:
        """Materialize ``upstream`` here, then let the process train until it pauses mid-save."""
        assert self.materialize(upstream).success
        self.go.touch()
        deadline = time.monotonic() + 180
        while not self.ready.exists():
            assert self.proc.poll() is None, self.output.read_text()[-3000:]
            assert time.monotonic() < deadline, "the training never reached the checkpoint to be killed in"
            time.sleep(0.2)

    def refusal(self) -> str:
        """Materialize the same asset again while the process trains: it must fail; its failure's description."""
        second = self.materialize([self.asset], raise_on_error=False)
        assert not second.success
        return next(e for e in second.all_events if e.is_step_failure).step_failure_data.user_failure_data.description

    def kill(self):
        """SIGKILL the process; returns the Dagster run it left STARTED."""
        import dagster as dg

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL
        return next(r for r in self.instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED)


@pytest.mark.slow
def test_a_killed_grpo_lm_is_refused_then_resumed_closed_and_continued(tiny_project, tiny_lm, tmp_path, caplog):
    """Issue 36, items 10-12, with a real SIGKILL to a real ``materialize grpo_lm`` process."""
    import dagster as dg

    grpo = {"num_generations": 2, "max_completion_length": 8, "max_steps": 4, "save_steps": 1}
    run = KilledMaterialization(tiny_project, tiny_lm, tmp_path, "grpo_lm", 3, grpo=grpo, cold_start={"enabled": False})
    pid = run.proc.pid
    try:
        run.start(["base_lm", "warm_lm"])
        # Item 12: a second materialization of the same training while the first one runs is refused.
        refusal = run.refusal()
        assert f"locked by grpo_lm training (pid {pid} on host {socket.gethostname()}, started " in refusal
        assert "wait for that run to finish" in refusal.lower(), refusal
    finally:
        killed_run = run.kill()
    key = next((tiny_project / ".cache" / "grpo").iterdir())
    assert (key / "checkpoint-3" / "model.safetensors").is_file(), "killed mid-save: the weights, nothing after"
    assert not (key / "checkpoint-3" / "trainer_state.json").exists()

    # Items 10 and 11: the next materialization takes the dead process's lock over, resumes from checkpoint-2
    # (the last complete one), closes the runs the kill left open and continues the curve in its own run.
    with caplog.at_level(logging.WARNING):
        third = run.materialize(["grpo_lm"])
    meta = third.asset_materializations_for_node("grpo_lm")[0].metadata
    assert meta["resumed_from"].value.endswith("checkpoint-2"), meta["resumed_from"].value
    assert (meta["global_step"].value, meta["steps_this_run"].value) == (4, 2)
    assert f"from grpo_lm training (pid {pid} on host" in caplog.text and "that process is gone" in caplog.text
    assert "skipped checkpoint-3 (no completion marker" in caplog.text

    client = _client(tiny_project)
    pointer = json.loads((run.layout.models / "grpo_lm.json").read_text())
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
    assert run.instance.get_run_by_id(killed_run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert [str(v.version) for v in client.search_model_versions("name='embodied-r-lm'")] == ["1"]
    assert not (key / "writer.lock").read_text(), "released"
