"""``base_lm`` and ``training_set`` on a real Dagster instance with a tiny local LM."""

import json

import dagster as dg
import pytest
import yaml

from embodied_r.training.dataset import read_training_rows
from orchestration.assets.data import raw_videos
from orchestration.assets.keyframes import keyframes
from orchestration.assets.perception import vlm_descriptions
from orchestration.assets.training import base_lm, training_set
from orchestration.checks import CHECKS_FILE, perception_data_checks
from orchestration.partitions import all_videos_run_tags
from orchestration.resources import ProjectResource
from tests.training.conftest import build_tiny_lm

ASSETS = [raw_videos, keyframes, vlm_descriptions, perception_data_checks, base_lm, training_set]


@pytest.fixture
def project_with_tiny_lm(tiny_project, tmp_path_factory):
    lm = build_tiny_lm(tmp_path_factory.mktemp("lm"))
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["lm"]["base"] = str(lm)
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    instance = dg.DagsterInstance.ephemeral()
    resources = {"project": ProjectResource(root=str(tiny_project))}
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success
    tags = all_videos_run_tags(instance)
    assert dg.materialize(ASSETS, selection=["keyframes"], instance=instance, resources=resources, tags=tags).success
    return tiny_project, lm, instance, resources


@pytest.mark.slow
def test_training_set_rows_follow_the_contract_and_the_split(project_with_tiny_lm):
    root, lm, instance, resources = project_with_tiny_lm
    result = dg.materialize(
        ASSETS, selection=["vlm_descriptions", "base_lm", "training_set"], instance=instance, resources=resources
    )
    assert result.success
    pointer = json.loads((root / "data" / "models" / "base_lm.json").read_text())
    assert pointer["path"] == str(lm)
    out = root / "data" / "training_set"
    records = [json.loads(x) for x in (root / "data" / "raw" / "records.jsonl").read_text().splitlines()]
    split_of = {r["question_id"]: r["split"] for r in records}
    total = 0
    for split in ("train", "val", "test"):
        rows = read_training_rows(out / f"{split}.jsonl")
        total += len(rows)
        for row in rows:
            assert split_of[row.question_id] == split == row.split
            assert row.prompt[0]["role"] == "system" and row.prompt[-1]["role"] == "user"
            assert row.solution in row.choices and row.prompt_tokens > 0
    excluded = len((out / "exclusions.jsonl").read_text().splitlines())
    assert total + excluded == len(records)
    meta = result.asset_materializations_for_node("training_set")[0].metadata
    assert meta["dagster/row_count"].value == total


@pytest.mark.slow
def test_training_set_refuses_data_whose_checks_failed(project_with_tiny_lm):
    root, _, instance, resources = project_with_tiny_lm
    assert dg.materialize(ASSETS, selection=["vlm_descriptions", "base_lm"], instance=instance, resources=resources)
    checks = json.loads((root / "data" / "descriptions" / CHECKS_FILE).read_text())
    checks["answers"]["success"] = False  # as if the suite had failed in an earlier, separate run
    (root / "data" / "descriptions" / CHECKS_FILE).write_text(json.dumps(checks))
    result = dg.materialize(
        ASSETS, selection=["training_set"], instance=instance, resources=resources, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "answers" in failure.step_failure_data.error.to_string()
    assert not (root / "data" / "training_set" / "train.jsonl").exists()
