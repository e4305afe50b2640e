"""``grpo_lm`` end to end on a tiny LM: real TRL steps, a real sqlite MLflow store and registry."""

import json

import dagster as dg
import mlflow
import pytest
import yaml

from orchestration.assets.data import raw_videos
from orchestration.assets.grpo import grpo_lm
from orchestration.assets.keyframes import keyframes
from orchestration.assets.perception import vlm_descriptions
from orchestration.assets.training import base_lm, training_set
from orchestration.checks import perception_data_checks
from orchestration.partitions import all_videos_run_tags
from orchestration.resources import MlflowResource, ProjectResource
from tests.training.conftest import build_tiny_lm

ASSETS = [raw_videos, keyframes, vlm_descriptions, perception_data_checks, base_lm, training_set, grpo_lm]


@pytest.mark.slow
def test_grpo_lm_trains_logs_to_mlflow_registers_and_resumes(tiny_project, tmp_path_factory):
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["lm"]["base"] = str(build_tiny_lm(tmp_path_factory.mktemp("lm")))
    params["grpo"].update(
        {"num_generations": 2, "prompts_per_step": 1, "max_completion_length": 8, "max_steps": 2, "save_steps": 1}
    )
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    instance = dg.DagsterInstance.ephemeral()
    project = ProjectResource(root=str(tiny_project))
    resources = {"project": project, "mlflow": MlflowResource(project=project)}
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success
    tags = all_videos_run_tags(instance)
    assert dg.materialize(ASSETS, selection=["keyframes"], instance=instance, resources=resources, tags=tags).success

    selection = ["vlm_descriptions", "base_lm", "training_set", "grpo_lm"]
    result = dg.materialize(ASSETS, selection=selection, instance=instance, resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("grpo_lm")[0].metadata
    assert meta["global_step"].value == 2 and meta["steps_this_run"].value == 2
    assert meta["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")

    pointer = json.loads((tiny_project / "data" / "models" / "grpo_lm.json").read_text())
    uri = f"sqlite:///{tiny_project}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(pointer["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["params.grpo.num_generations"] == "2"
    history = client.get_metric_history(pointer["run_id"], "rewards/format/mean")
    assert len(history) == 2, "one format-reward point per step"
    assert client.get_metric_history(pointer["run_id"], "schedule/w_format")
    versions = client.search_model_versions(f"name='{params['tracking']['registered_model']}'")
    assert [str(v.version) for v in versions] == [pointer["version"]] == ["1"]
    assert (tiny_project / "mlruns" / "artifacts").is_dir(), "artifacts live under mlruns/"

    # Same data and settings: the training resumes from its last checkpoint instead of starting over.
    again = dg.materialize(ASSETS, selection=["grpo_lm"], instance=instance, resources=resources)
    meta = again.asset_materializations_for_node("grpo_lm")[0].metadata
    assert "checkpoint-2" in meta["resumed_from"].value, meta["resumed_from"].value
    assert meta["steps_this_run"].value == 0, (meta["steps_this_run"].value, meta["global_step"].value)
    assert json.loads((tiny_project / "data" / "models" / "grpo_lm.json").read_text())["version"] == "2"


@pytest.mark.slow
def test_grpo_lm_trains_in_two_processes_with_torchrun(tiny_project, tmp_path_factory):
    """A params change, not a code change: the same asset launches DDP (gloo on CPU, one process per GPU)."""
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["lm"]["base"] = str(build_tiny_lm(tmp_path_factory.mktemp("lm")))
    params["grpo"].update({"launcher": "torchrun", "nproc_per_node": 2, "max_steps": 1})
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    instance = dg.DagsterInstance.ephemeral()
    project = ProjectResource(root=str(tiny_project))
    resources = {"project": project, "mlflow": MlflowResource(project=project)}
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success
    tags = all_videos_run_tags(instance)
    assert dg.materialize(ASSETS, selection=["keyframes"], instance=instance, resources=resources, tags=tags).success

    selection = ["vlm_descriptions", "base_lm", "training_set", "grpo_lm"]
    result = dg.materialize(ASSETS, selection=selection, instance=instance, resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("grpo_lm")[0].metadata
    assert meta["world_size"].value == 2 and meta["global_step"].value == 1
    pointer = json.loads((tiny_project / "data" / "models" / "grpo_lm.json").read_text())
    ranks = sorted((tiny_project / ".cache" / "grpo" / pointer["training_key"] / "launch_ranks").glob("rank-*.json"))
    assert [json.loads(p.read_text()) for p in ranks] == [
        {"rank": 0, "world_size": 2},
        {"rank": 1, "world_size": 2},
    ]
    uri = f"sqlite:///{tiny_project}/mlruns/mlflow.db"
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(pointer["run_id"], "rewards/format/mean")
    assert len(history) == 1, "the launched processes log into the asset's MLflow run"
