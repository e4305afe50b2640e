"""The whole lineage on the ``tiny`` profile (CI): every asset in-process through Dagster, then through DVC.

The DVC run is a real DVC repo in a copy of the project: ``embodied-r profile tiny`` then ``dvc repro`` runs every
stage (each a Dagster materialization), a second ``dvc repro`` does nothing, a changed param reruns only the
stages downstream of it, and ``dvc exp run -S key=value`` works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

STAGES = set(yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"])


def assert_every_stage_produced_its_outputs(root: Path) -> None:
    """What each asset of the lineage must leave behind, checked stage by stage."""
    data = root / "data"
    summary = json.loads((data / "raw" / "summary.json").read_text())
    assert summary["videos"] == 3 and summary["questions"] > 0
    videos = json.loads((data / "raw" / "videos.json").read_text())
    for video_id in videos:
        manifest = json.loads((data / "keyframes" / video_id / "manifest.json").read_text())
        assert 4 <= len(manifest["keyframes"]) <= 32, video_id
        assert (data / "keyframes" / video_id / "contact_sheet.png").is_file()
    samples = (data / "descriptions" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == summary["questions"]
    checks = json.loads((data / "descriptions" / "checks.json").read_text())
    assert checks and all(c["success"] for c in checks.values())
    rows = {s: (data / "training_set" / f"{s}.jsonl").read_text().splitlines() for s in ("train", "val", "test")}
    assert all(rows.values()), {s: len(r) for s, r in rows.items()}
    models = data / "models"
    base = json.loads((models / "base_lm.json").read_text())
    assert base["source"] == "random:tiny-llama"
    warm = json.loads((models / "warm_lm.json").read_text())
    sft = json.loads((models / "sft_lm.json").read_text())
    assert warm["enabled"] and sft["enabled"]
    grpo = json.loads((models / "grpo_lm.json").read_text())
    assert grpo["version"] == "1"
    for stage, pointer in {"base_lm": base, "warm_lm": warm, "sft_lm": sft, "grpo_lm": grpo}.items():
        # every model is a DVC output in data/models/<stage>/, named relative to the root (the same on any machine)
        assert pointer["path"] == f"data/models/{stage}" and (root / pointer["path"] / "model.safetensors").is_file()
        assert not any(str(v).startswith("/") for v in pointer.values()), pointer
    results = json.loads((data / "evaluation" / "results.json").read_text())
    assert results["aggregate"]["n"] == len(rows["test"])
    assert results["generation"]["reused_rows"] == 0 and Path(results["generation"]["kept"]).is_file()
    assert results["extra"]["promotion"]["promoted"] is True, "the first passing candidate becomes champion"
    assert results["extra"]["registry"]["version"] == "1", "the version the training registered, found by its hash"
    assert results["extra"]["registry"]["registered_by_evaluation"] is False
    metrics = json.loads((data / "evaluation" / "metrics.json").read_text())
    assert {"base", "warm-start", "grpo", "sft", "grpo, perfect noise", "grpo, high noise"} <= set(metrics)
    for png in ("category_accuracy.png", "training_curves.png", "noise_study.png"):
        assert (data / "evaluation" / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_whole_lineage_in_process_through_dagster(tiny_project):
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.partitions import all_videos_run_tags
    from orchestration.resources import MlflowResource, ProjectResource

    project = ProjectResource(root=str(tiny_project))
    resources = {"project": project, "mlflow": MlflowResource(project=project)}
    instance = dg.DagsterInstance.ephemeral()
    everything = [*defs.assets, *(defs.asset_checks or [])]

    def run(selection: list[str], **kwargs) -> dg.ExecuteInProcessResult:
        result = dg.materialize(everything, selection=selection, instance=instance, resources=resources, **kwargs)
        assert result.success, selection
        return result

    run(["raw_videos"])  # registers one dynamic partition per video
    run(["keyframes"], tags=all_videos_run_tags(instance, project))  # every video in one run
    downstream = [k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()]
    # predictions answers the inbox's videos (partitioned by them): not a stage of the lineage
    downstream = [k for k in downstream if k not in ("raw_videos", "keyframes", "predictions")]
    result = run(downstream)
    checks = list(result.get_asset_check_evaluations())
    assert checks and all(c.passed for c in checks)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set(downstream)
    assert_every_stage_produced_its_outputs(tiny_project)


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture
def dvc_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project (code, dvc.yaml, params.yaml, profiles) in a fresh git + DVC repo."""
    dvc = shutil.which("dvc")
    assert dvc, "dvc is not on PATH: run the tests with `make test`, which installs it in .venv-dvc"
    root = tmp_path / "project"
    for name in ("src", "orchestration", "profiles"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    env = {**os.environ, "DAGSTER_HOME": str(root / ".dagster_home")}
    _run(["git", "init", "-q"], root, env)
    _run(["embodied-r", "profile", "tiny"], root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["lm"]["cache_dir"] = str(tmp_path / "models")  # the tiny random LM is built here, not in ~/.cache
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run([dvc, "init", "-q"], root, env)
    # The predictions stage's input, as in the project: the inbox's README is in git, its videos are not (an empty
    # inbox has nothing to answer, and a clone gets the same inbox).
    (root / ".gitignore").write_text("/data/\n/mlruns/\n/.cache/\n/.dagster_home/\n/inbox/*\n!/inbox/README.md\n")
    (root / "inbox").mkdir()
    shutil.copy(PROJECT_ROOT / "inbox" / "README.md", root / "inbox" / "README.md")
    _run(["git", "add", "-A"], root, env)
    _run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "tiny"], root, env)
    return root, env


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_once_then_only_what_changed(dvc_project):
    root, env = dvc_project
    first = _run(["dvc", "repro"], root, env)
    assert _stages_run(first) == STAGES
    assert_every_stage_produced_its_outputs(root)
    assert (root / ".dagster_home" / "dagster.yaml").is_file(), "the CLI creates the Dagster home when missing"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["raw_videos"]["params"]["params.yaml"]["synthetic"]["seed"] == 7

    second = _run(["dvc", "repro"], root, env)
    assert _stages_run(second) == set(), "a second repro must be a no-op"

    # A perception param changes: perception and what follows rerun; data, key frames and the base LM do not.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["perception"]["miss_object_prob"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _stages_run(_run(["dvc", "repro"], root, env))
    assert "vlm_descriptions" in third
    assert not third & {"raw_videos", "keyframes", "base_lm"}

    # An experiment with one param only evaluation reads (the bootstrap's seed; warm_lm and sft_lm read the
    # decoding and bootstrap_samples keys for their format check): only the evaluation stage runs.
    _run(["git", "add", "-A"], root, env)
    _run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "noise 0"], root, env)
    exp = _run(["dvc", "exp", "run", "-S", "evaluation.seed=1"], root, env)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    # and the stages that read its results (predictions: the champion it records)
    readers = {name for name, stage in stages.items() if "${data_dir}/evaluation/results.json" in stage.get("deps", [])}
    assert _stages_run(exp) == {"evaluation_results", *readers}
    assert yaml.safe_load((root / "params.yaml").read_text())["evaluation"]["seed"] == 1
    # The bootstrap does not change a completion: every test pass is read back from .cache/evaluation.
    results = json.loads((root / "data" / "evaluation" / "results.json").read_text())
    assert results["generation"]["reused_rows"] == results["aggregate"]["n"] > 0
