"""The evaluation stage's inputs (:mod:`embodied_r.evaluation.stage`), from the stages' pointers, without Dagster."""

import pytest

from embodied_r.config import load_params
from embodied_r.errors import UserError
from embodied_r.evaluation.stage import EmptyTestSetError, evaluate_lineage, lineage_models
from embodied_r.layout import Layout
from embodied_r.models.pointers import (
    BASE_LM_POINTER,
    GRPO_POINTER,
    SFT_LM_POINTER,
    WARM_LM_POINTER,
    MissingUpstreamError,
    write_pointer,
)


def _pointers(models, *, warm: bool, sft: bool) -> None:
    write_pointer(models, BASE_LM_POINTER, {"path": "/base"})
    write_pointer(models, WARM_LM_POINTER, {"enabled": warm, "path": "/warm" if warm else "/base", "base": "/base"})
    write_pointer(models, SFT_LM_POINTER, {"enabled": sft, "path": "/sft" if sft else None})
    write_pointer(models, GRPO_POINTER, {"path": "/grpo", "run_id": "r", "version": "1"})


def test_the_lineage_is_read_from_each_stages_pointer_in_table_order(tiny_project):
    params = load_params(tiny_project / "params.yaml")
    layout = Layout(root=tiny_project, data_dir=params.data_dir)
    _pointers(layout.models, warm=True, sft=True)
    assert lineage_models(params, layout) == {"base": "/base", "warm-start": "/warm", "grpo": "/grpo", "sft": "/sft"}
    _pointers(layout.models, warm=False, sft=False)
    no_base = params.model_copy(update={"evaluation": params.evaluation.model_copy(update={"base_model": False})})
    assert lineage_models(no_base, layout) == {"grpo": "/grpo"}


def test_missing_or_empty_test_rows_are_one_paragraph_naming_the_file(tiny_project):
    params = load_params(tiny_project / "params.yaml")
    layout = Layout(root=tiny_project, data_dir=params.data_dir)
    with pytest.raises(MissingUpstreamError, match=r"test\.jsonl is missing: materialize training_set first"):
        evaluate_lineage(params, layout)
    layout.training_set.mkdir(parents=True)
    (layout.training_set / "test.jsonl").write_text("")
    with pytest.raises(EmptyTestSetError, match=r"test\.jsonl has no rows: nothing to evaluate") as caught:
        evaluate_lineage(params, layout)
    assert isinstance(caught.value, UserError)
