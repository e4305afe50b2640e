"""Every study in ``experiments/`` runs, as a user runs it (``python -m experiments.NAME ...`` from the project
root), on the tiny model: the sibling of ``tests/benchmarks/test_scripts.py``, in the experiments run
(``make test-experiments``). A new study without an entry in ``_runs`` fails
``test_every_experiment_has_a_smoke_run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.workspace import ROOT, assert_runs, script_names

EXPERIMENTS = ROOT / "experiments"


def _runs(w: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """Study name -> (arguments, a line its report must print). Every output goes under the workspace."""
    model, data, params, out = str(w["model"]), str(w["data"]), str(w["params"]), w["root"] / "out"
    rows = data + "/training_set/"
    return {
        "learnability": (
            [
                "--model",
                model,
                "--data",
                rows,
                "--batch",
                "3",
                "--examples",
                "6",
                "--eval-every",
                "3",
                "--out",
                f"{out}/learnability.jsonl",
            ],
            "0 examples: test",
        ),
        "learning": (
            [
                "--params",
                params,
                "--data",
                data,
                "--tag",
                "smoke",
                "--work",
                f"{out}/learning",
                "--out",
                f"{out}/learning.jsonl",
                "--keep-dir",
                f"{out}/kept-learning",
                "-S",
                "cold_start.answer=letter",
                "-S",
                "sft.answer=letter",
                "-S",
                "rewards.accuracy_mode=answer_tag",
            ],
            "gain over warm start",
        ),
        "letters": (
            [model, "--rows", rows + "test.jsonl", "--out", f"{out}/letters.jsonl"],
            "multiple-choice rows from",
        ),
        "paired": (
            [
                model,
                model,
                "--params",
                params,
                "--data",
                data,
                "--out",
                f"{out}/paired.jsonl",
                "--keep-dir",
                f"{out}/kept",
            ],
            "paired 95% interval",
        ),
        "rollouts": (
            [
                model,
                "--params",
                params,
                "--rows",
                rows + "train.jsonl",
                "--prompts",
                "2",
                "--generations",
                "2",
                "--max-new-tokens",
                "4",
                "--out",
                f"{out}/rollouts.jsonl",
            ],
            "T=1.0: signal",
        ),
    }


_NAMES = sorted(_runs(dict.fromkeys(("model", "data", "params", "root"), Path("x"))))


def test_every_experiment_has_a_smoke_run() -> None:
    assert script_names(EXPERIMENTS) == set(_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("study", _NAMES)
def test_experiment_runs_on_the_tiny_model(study: str, workspace: dict[str, Path]) -> None:
    args, expected = _runs(workspace)[study]
    assert_runs(["-m", f"experiments.{study}", *args], cwd=ROOT, expected=expected)  # from the root, as a module
