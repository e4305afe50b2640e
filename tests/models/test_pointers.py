"""Model pointers (``data/models/*.json``): one module writes and reads them for every stage."""

from pathlib import Path

import pytest

from embodied_r.errors import UserError
from embodied_r.layout import Layout
from embodied_r.models.pointers import (
    BASE_LM_POINTER,
    SFT_LM_POINTER,
    WARM_LM_POINTER,
    MissingUpstreamError,
    project_path,
    read_base_lm_path,
    read_model_path,
    read_pointer,
    write_pointer,
)


def test_a_missing_pointer_names_the_stage_to_materialize(tmp_path):
    with pytest.raises(MissingUpstreamError) as caught:
        read_pointer(tmp_path, WARM_LM_POINTER)
    assert isinstance(caught.value, UserError), "the command line prints it as one paragraph, no traceback"
    message = str(caught.value)
    assert str(tmp_path / WARM_LM_POINTER) in message
    assert "materialize warm_lm first (`embodied-r materialize warm_lm`, or `dvc repro`)" in message


def test_a_pointer_is_written_as_pretty_sorted_json_and_read_back(tmp_path):
    path = write_pointer(tmp_path / "models", BASE_LM_POINTER, {"source": "tiny", "path": "/lm", "revision": None})
    assert path.read_text() == '{\n  "path": "/lm",\n  "revision": null,\n  "source": "tiny"\n}\n'
    assert read_pointer(tmp_path / "models", BASE_LM_POINTER)["source"] == "tiny"


def test_pointers_name_models_relative_to_the_root_and_resolve_on_any_machine(tmp_path):
    """A pointer pulled onto another machine (another root) names the same folder there."""
    here, there = Layout(root=tmp_path / "a"), Layout(root=tmp_path / "b", data_dir="data")
    relative = project_path(here, here.models / "base_lm")
    assert relative == "data/models/base_lm"
    for layout in (here, there):
        write_pointer(layout.models, BASE_LM_POINTER, {"source": "tiny", "path": relative})
        assert read_base_lm_path(layout) == layout.root / "data" / "models" / "base_lm"
    write_pointer(there.models, SFT_LM_POINTER, {"enabled": False, "path": None})
    assert read_model_path(there, SFT_LM_POINTER) is None
    # A pointer written before pointers were relative still reads (its absolute path as it is).
    write_pointer(here.models, WARM_LM_POINTER, {"enabled": False, "path": "/lm"})
    assert read_model_path(here, WARM_LM_POINTER) == Path("/lm")
    with pytest.raises(ValueError, match="outside the project"):
        project_path(here, tmp_path / "elsewhere")
