"""Model pointers (``data/models/*.json``): one module writes and reads them for every stage."""

import pytest

from embodied_r.errors import UserError
from embodied_r.models.pointers import (
    BASE_LM_POINTER,
    WARM_LM_POINTER,
    MissingUpstreamError,
    read_base_lm_path,
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
    assert str(read_base_lm_path(tmp_path / "models")) == "/lm"
