"""The code location loads, and its lineage is what the method says."""

import subprocess
import sys

import dagster as dg

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
