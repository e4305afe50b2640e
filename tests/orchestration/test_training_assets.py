"""``base_lm`` and ``training_set`` on a real Dagster instance with a tiny local LM."""

import json
from collections import Counter

import pytest
import yaml

from embodied_r.models.folders import dvc_md5
from embodied_r.training.dataset import read_training_rows
from orchestration.checks import CHECKS_FILE


@pytest.mark.slow
def test_training_set_rows_follow_the_contract_and_the_split(tiny_pipeline):
    pipeline = tiny_pipeline()
    root = pipeline.root
    result = pipeline.materialize(["vlm_descriptions", "base_lm", "training_set"])
    assert result.success
    pointer = json.loads((root / "data" / "models" / "base_lm.json").read_text())
    lm = yaml.safe_load((root / "params.yaml").read_text())["lm"]["base"]
    # a copy of the LM in data/models/base_lm (a DVC output), named from the root: no model cache on a 2nd machine
    assert pointer["path"] == "data/models/base_lm" and pointer["source"] == lm
    assert dvc_md5(root / pointer["path"]) == dvc_md5(lm)
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
    train_letters = Counter(row.solution for row in read_training_rows(out / "train.jsonl"))
    assert meta["answer_letters"].value["train"] == dict(sorted(train_letters.items()))


@pytest.mark.slow
def test_training_set_refuses_data_whose_checks_failed(tiny_pipeline):
    pipeline = tiny_pipeline()
    root = pipeline.root
    assert pipeline.materialize(["vlm_descriptions", "base_lm"]).success
    checks = json.loads((root / "data" / "descriptions" / CHECKS_FILE).read_text())
    checks["answers"]["success"] = False  # as if the suite had failed in an earlier, separate run
    (root / "data" / "descriptions" / CHECKS_FILE).write_text(json.dumps(checks))
    result = pipeline.materialize(["training_set"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "answers" in failure.step_failure_data.error.to_string()
    assert not (root / "data" / "training_set" / "train.jsonl").exists()


@pytest.mark.slow
def test_the_difficulty_filter_samples_the_base_lm_and_drops_only_train_questions(tiny_pipeline):
    # the tiny random LM writes no <answer>: every train question is "too hard" for it (0 of k right)
    pipeline = tiny_pipeline(training_set={"difficulty_filter": True, "difficulty_k": 2, "max_completion_tokens": 8})
    result = pipeline.materialize(["vlm_descriptions", "base_lm", "training_set"])
    assert result.success
    out = pipeline.root / "data" / "training_set"
    records = [json.loads(x) for x in (pipeline.root / "data" / "raw" / "records.jsonl").read_text().splitlines()]
    exclusions = [json.loads(x) for x in (out / "exclusions.jsonl").read_text().splitlines()]
    too_hard = [e for e in exclusions if e["reason"] == "too_hard"]
    assert len(too_hard) == sum(r["split"] == "train" for r in records) > 0
    assert all(e["detail"] == "0/2 sampled answers correct" for e in too_hard)
    assert read_training_rows(out / "train.jsonl") == []
    assert len(read_training_rows(out / "test.jsonl")) == sum(r["split"] == "test" for r in records) > 0
