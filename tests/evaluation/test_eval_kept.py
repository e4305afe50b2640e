"""Kept completions (embodied_r.evaluation.kept): an interrupted test pass resumes at its first unfinished batch,
a repeated one generates nothing, and anything that changes a completion names another file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from embodied_r.evaluation import generate as gen
from embodied_r.evaluation.generate import evaluate_model
from embodied_r.evaluation.kept import KeptGeneration, append_kept, generations_path, model_fingerprint, read_kept
from embodied_r.models.tiny import write_tiny_rows
from embodied_r.training.dataset import read_training_rows

SETTINGS = {"max_new_tokens": 6, "batch_size": 2, "progress": False}


@pytest.fixture
def generated_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The row positions of every batch generated (each finished batch is appended once)."""
    batches: list[list[int]] = []
    real = gen.append_kept

    def spy(path, items):
        items = list(items)
        batches.append([item.row for item in items])
        real(path, items)

    monkeypatch.setattr(gen, "append_kept", spy)
    return batches


@pytest.mark.slow
def test_an_interrupted_pass_resumes_at_its_first_unfinished_batch_with_the_same_completions(
    tiny_lm: Path, rows: list, tmp_path: Path, generated_batches: list[list[int]]
) -> None:
    fresh = evaluate_model(tiny_lm, rows, **SETTINGS)
    kept_dir = tmp_path / "kept"
    first = evaluate_model(tiny_lm, rows, keep_dir=kept_dir, **SETTINGS)
    assert first.per_sample == fresh.per_sample and first.settings["reused_rows"] == 0
    assert len(generated_batches) == 3  # 5 rows, 2 a batch
    path = Path(first.settings["kept"])
    assert path.parent == kept_dir and len(read_kept(path, rows)) == len(rows)

    # Killed during the second batch's write: the first batch whole, then half a line.
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:20])
    generated_batches.clear()
    resumed = evaluate_model(tiny_lm, rows, keep_dir=kept_dir, **SETTINGS)
    assert resumed.settings["reused_rows"] == 2
    finished = {KeptGeneration.model_validate_json(line).row for line in lines[:2]}
    assert len(generated_batches) == 2
    assert sorted(row for batch in generated_batches for row in batch) == sorted(set(range(len(rows))) - finished)
    assert resumed.per_sample == fresh.per_sample  # the same batches as a run from the start: the same tokens
    assert all(line.endswith("}") for line in path.read_text().splitlines()), "the cut line is gone"

    generated_batches.clear()
    again = evaluate_model(tiny_lm, rows, keep_dir=kept_dir, **SETTINGS)
    assert generated_batches == [] and again.settings["reused_rows"] == len(rows)
    assert again.aggregate == fresh.aggregate


@pytest.mark.slow
def test_what_changes_a_completion_names_another_file(tiny_lm: Path, rows: list, tmp_path: Path) -> None:
    settings = {"max_new_tokens": 6, "batch_size": 2}
    path = generations_path(tmp_path, tiny_lm, rows, settings)
    assert path == generations_path(tmp_path, tiny_lm, list(rows), dict(settings))
    assert path != generations_path(tmp_path, tiny_lm, rows, settings | {"max_new_tokens": 7})
    assert path != generations_path(tmp_path, tiny_lm, rows[::-1], settings)  # kept lines are row positions
    reworded = [rows[0].model_copy(update={"prompt": [*rows[0].prompt[:-1], {"role": "user", "content": "?"}]})]
    assert generations_path(tmp_path, tiny_lm, reworded, settings) != generations_path(
        tmp_path, tiny_lm, rows[:1], settings
    )  # another noise level re-describes the same questions
    retrained = tmp_path / "retrained"
    shutil.copytree(tiny_lm, retrained)
    assert model_fingerprint(retrained) == model_fingerprint(tiny_lm)  # bytes, not the folder's name
    weights = retrained / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert model_fingerprint(retrained) != model_fingerprint(tiny_lm)


def test_a_file_of_other_questions_is_refused_naming_it(tmp_path: Path) -> None:
    rows = read_training_rows(write_tiny_rows(tmp_path / "test.jsonl", n=3, split="test"))
    path = tmp_path / "kept.jsonl"
    other = KeptGeneration(row=1, question_id="not-this-one", text="x", completion_tokens=1, truncated=False)
    append_kept(path, [other])
    with pytest.raises(ValueError, match=r"kept\.jsonl.*row 1 is 'not-this-one'.*delete it"):
        read_kept(path, rows)
    assert read_kept(tmp_path / "missing.jsonl", rows) == {}


def test_a_missing_model_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere.*training stage"):
        model_fingerprint(tmp_path / "nowhere")
