"""``grpo_lm`` end to end on a tiny LM: real TRL steps, a real sqlite MLflow store and registry."""

import json

import mlflow
import pytest

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
