"""Results with provenance, the markdown table and the PNG figures (deterministic bytes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from embodied_r.evaluation.metrics import aggregate, score_sample
from embodied_r.evaluation.plots import category_accuracy_png, training_curves_png
from embodied_r.evaluation.report import (
    build_results,
    markdown_table,
    params_hash,
    sha256_file,
    write_per_sample,
    write_results,
)
from tests.evaluation.helpers import make_row

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _agg(pattern: dict[str, list[bool]]) -> dict:
    samples = []
    for category, oks in pattern.items():
        for i, ok in enumerate(oks):
            row = make_row(f"{category}{i}", category=category)
            samples.append(score_sample("<think>t</think><answer>" + ("B" if ok else "A") + "</answer>", row))
    return aggregate(samples)


BASE = {"object_rel_direction": [True, False, False, False], "route_plan": [False, True]}
TRAINED = {"object_rel_direction": [True, True, False, False], "route_plan": [True, True]}


def test_markdown_table_base_vs_trained() -> None:
    table = markdown_table({"base": _agg(BASE), "trained": _agg(TRAINED)}, delta=("base", "trained"))
    lines = table.splitlines()
    assert lines[0] == "| category | n | chance | base | trained | Δ trained − base |"
    assert "| object_rel_direction | 4 | 25.0 | 25.0 | 50.0 | +25.0 |" in lines
    assert "| route_plan | 2 | 25.0 | 50.0 | 100.0 | +50.0 |" in lines
    pooled = next(line for line in lines if "pooled" in line)
    assert "**33.3** [" in pooled and "**66.7** [" in pooled and "+33.3" in pooled
    assert any(line.startswith("| format compliance") for line in lines)
    # base answers A four times in six, trained B four times; every solution is B, so "always B" scores 100%
    assert "| most frequent letter's share |  | – | 66.7 | 66.7 | +0.0 |" in lines
    assert "| best constant letter (prior) |  | – | 100.0 | 100.0 | +0.0 |" in lines


def test_markdown_table_many_models_and_one_delta() -> None:
    table = markdown_table({"base": _agg(BASE), "warm": _agg(BASE), "grpo": _agg(TRAINED)}, delta=("warm", "grpo"))
    lines = table.splitlines()
    assert lines[0] == "| category | n | chance | base | warm | grpo | Δ grpo − warm |"
    assert "| route_plan | 2 | 25.0 | 50.0 | 50.0 | 100.0 | +50.0 |" in lines
    with pytest.raises(ValueError, match="not among"):
        markdown_table({"base": _agg(BASE)}, delta=("base", "sft"))


def _two_source_agg(urban_ok: list[bool], vsi_ok: list[bool]) -> dict:
    samples = []
    for source, oks in (("urbanvideo", urban_ok), ("vsibench", vsi_ok)):
        for i, ok in enumerate(oks):
            row = make_row(f"{source}__{i}").model_copy(update={"data_source": source})
            samples.append(score_sample("<think>t</think><answer>" + ("B" if ok else "A") + "</answer>", row))
    return aggregate(samples, bootstrap_samples=200)


def test_markdown_table_shows_each_source_under_the_pooled_row(tmp_path: Path) -> None:
    base = _two_source_agg([True, False, False, False], [False, False])
    grpo = _two_source_agg([True, True, True, False], [True, False])
    lines = markdown_table({"base": base, "grpo": grpo}, delta=("base", "grpo")).splitlines()
    pooled = next(i for i, line in enumerate(lines) if "pooled (Avg)" in line)
    assert lines[pooled + 1].startswith("| pooled, urbanvideo | 4 | – | 25.0 [") and "75.0 [" in lines[pooled + 1]
    assert lines[pooled + 1].endswith("| +50.0 |")
    assert lines[pooled + 2].startswith("| pooled, vsibench | 2 | – | 0.0 [0.0, 0.0] | 50.0 [")
    one = markdown_table({"trained": _agg(TRAINED)})
    assert "pooled, " not in one, "one source: no per-source rows"
    (tmp_path / "test.jsonl").write_text("{}\n")
    results = build_results(grpo, model_uri="m", model_version=None, test_set_path=tmp_path / "test.jsonl",
                            params={}, generation={}, root=tmp_path)  # fmt: skip
    assert results["counts"]["per_source"] == {"urbanvideo": 4, "vsibench": 2}
    assert results["aggregate"]["per_source"]["vsibench"]["accuracy"] == 0.5


def test_markdown_table_one_model() -> None:
    table = markdown_table({"trained": _agg(TRAINED)})
    assert table.splitlines()[0] == "| category | n | chance | trained |"


def test_build_results_provenance(tmp_path: Path) -> None:
    test_set = tmp_path / "test.jsonl"
    test_set.write_text('{"question_id": "q1"}\n')
    agg = _agg(TRAINED)
    results = build_results(
        agg,
        model_uri="models:/embodied-r-lm/3",
        model_version=3,
        test_set_path=test_set,
        params={"b": 1, "a": {"c": 2}},
        generation={"do_sample": False, "max_new_tokens": 64},
        root=Path(__file__).parent,
    )
    assert results["dataset"]["sha256"] == hashlib.sha256(test_set.read_bytes()).hexdigest() == sha256_file(test_set)
    assert results["model"] == {"uri": "models:/embodied-r-lm/3", "registry_version": "3"}
    assert results["params_sha256"] == params_hash({"a": {"c": 2}, "b": 1})  # key order does not matter
    assert set(results["libraries"]) >= {"torch", "transformers", "trl", "mlflow"}
    assert results["libraries"]["torch"]
    assert results["git"]["commit"] is None or len(results["git"]["commit"]) == 40
    assert results["counts"] == {
        "samples": 6,
        "numeric": 0,
        "per_category": {"object_rel_direction": 4, "route_plan": 2},
        "per_source": {"synthetic": 6},
    }
    assert results["generation"]["max_new_tokens"] == 64

    first = write_results(tmp_path / "a" / "results.json", results).read_bytes()
    second = write_results(tmp_path / "b" / "results.json", json.loads(first)).read_bytes()
    assert first == second
    keys = list(json.loads(first))
    assert keys == sorted(keys)


def test_params_hash_of_pydantic_params() -> None:
    from embodied_r.config import Params

    assert params_hash(Params()) == params_hash(Params().model_dump(mode="json"))


def test_write_per_sample(tmp_path: Path) -> None:
    samples = [score_sample("<answer>B</answer>", make_row("q1")), score_sample("x", make_row("q2"))]
    lines = write_per_sample(tmp_path / "samples.jsonl", samples).read_text().splitlines()
    assert [json.loads(line)["question_id"] for line in lines] == ["q1", "q2"]


def test_category_accuracy_png_is_deterministic(tmp_path: Path) -> None:
    results = {"base": _agg(BASE), "trained": _agg(TRAINED)}
    a = category_accuracy_png(results, tmp_path / "a.png").read_bytes()
    b = category_accuracy_png(results, tmp_path / "b.png").read_bytes()
    assert a.startswith(PNG_MAGIC) and len(a) > 1000
    assert a == b


@pytest.fixture
def mlflow_client(tmp_path: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.mark.slow
def test_training_curves_png_from_run_history(mlflow_client, tmp_path: Path) -> None:
    exp = mlflow_client.create_experiment("curves", artifact_location=(tmp_path / "art").as_uri())
    run = mlflow_client.create_run(exp)
    run_id = run.info.run_id
    for step in range(1, 6):
        mlflow_client.log_metric(run_id, "rewards/format/mean", 0.1 * step, step=step, timestamp=1000 + step)
        mlflow_client.log_metric(run_id, "rewards/accuracy/mean", 0.05 * step, step=step, timestamp=1000 + step)
        mlflow_client.log_metric(run_id, "reward", 0.08 * step, step=step, timestamp=1000 + step)
        mlflow_client.log_metric(run_id, "completions/mean_length", 100 - step, step=step, timestamp=1000 + step)
    a = training_curves_png(mlflow_client, run_id, tmp_path / "a.png").read_bytes()
    b = training_curves_png(mlflow_client, run_id, tmp_path / "b.png").read_bytes()
    assert a.startswith(PNG_MAGIC) and a == b

    empty = mlflow_client.create_run(exp).info.run_id
    assert training_curves_png(mlflow_client, empty, tmp_path / "empty.png").stat().st_size > 0
