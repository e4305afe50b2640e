"""The code location loads, and its lineage is what the method says."""

import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from orchestration.definitions import defs
from tests.conftest import PROJECT_ROOT


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "raw_videos" in keys


def test_dagster_cli_validates_the_code_location():
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "orchestration.definitions"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runs_execute_in_process():
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == dg.in_process_executor.name


def test_the_executor_is_chosen_by_the_orchestration_setting():
    """Before: definitions.py pinned dg.in_process_executor; now params.yaml's orchestration section picks it."""
    from embodied_r.config import OrchestrationConfig
    from orchestration.definitions import ExecutorError, executor_for

    assert executor_for(OrchestrationConfig()).name == dg.in_process_executor.name
    assert executor_for(OrchestrationConfig(executor="multiprocess")).name == dg.multiprocess_executor.name
    # a deployment's own executor, by import path (here Dagster's multiprocess one: dagster_k8s is not installed)
    chosen = executor_for(OrchestrationConfig(executor="dagster:multiprocess_executor"))
    assert chosen is dg.multiprocess_executor
    with pytest.raises(ExecutorError, match=r"'dagster_k8s:k8s_job_executor' cannot be imported .* pip install"):
        executor_for(OrchestrationConfig(executor="dagster_k8s:k8s_job_executor"))
    with pytest.raises(ExecutorError, match="not a Dagster executor"):
        executor_for(OrchestrationConfig(executor="dagster:asset"))


def test_the_ui_code_location_takes_root_and_params_from_its_declared_env_vars(tmp_path):
    """No hidden inputs: the resource's root and params file are dg.EnvVar config (shown in the UI), set by
    ``embodied-r ui``; the params file they name chooses the UI runs' executor."""
    from orchestration.definitions import UI_PARAMS_ENV, UI_ROOT_ENV

    project = defs.resources["project"]
    assert (project.root, project.params_file) == (dg.EnvVar(UI_ROOT_ENV), dg.EnvVar(UI_PARAMS_ENV))
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"orchestration": {"executor": "multiprocess"}}))
    code = (
        "from orchestration.definitions import defs\n"
        "print(defs.resolve_implicit_global_asset_job_def().executor_def.name)"
    )
    env = {**os.environ, UI_ROOT_ENV: str(tmp_path), UI_PARAMS_ENV: "other.yaml"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == dg.multiprocess_executor.name


#: The lineage: each asset and the assets it reads (a changed edge is a visible diff).
LINEAGE = {
    "raw_videos": set(),
    "keyframes": {"raw_videos"},
    "vlm_descriptions": {"raw_videos", "keyframes"},
    "base_lm": set(),
    "training_set": {"vlm_descriptions", "base_lm"},
    "warm_lm": {"training_set", "base_lm"},
    "sft_lm": {"training_set", "base_lm"},
    "grpo_lm": {"training_set", "base_lm", "warm_lm"},
    "evaluation_results": {"grpo_lm", "warm_lm", "sft_lm", "base_lm", "training_set"},
    "predictions": {"evaluation_results"},  # the champion evaluation_results promotes answers the inbox
}


def test_lineage_snapshot():
    graph = defs.resolve_asset_graph()
    got = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert got == LINEAGE


def test_one_dvc_stage_per_asset_each_a_dagster_materialization():
    import yaml

    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(LINEAGE)
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"embodied-r materialize {name}"), name
