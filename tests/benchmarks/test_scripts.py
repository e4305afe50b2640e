"""Every script in ``benchmarks/`` runs, as a user runs it (``python benchmarks/NAME.py ...``), on the tiny model.

A benchmark that nobody runs rots silently: ``benchmarks/grpo.py`` imported a test fixture by path and failed at
start-up for weeks after the fixture moved. Each script here runs once, in a subprocess from a scratch folder, with
the smallest arguments that still go through all of its code paths; the test checks its exit code and the line its
report must print. A new script without an entry in ``_runs`` fails ``test_every_benchmark_script_has_a_smoke_run``.
The research studies of ``experiments/`` have the same smoke runs in ``tests/experiments/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.workspace import ROOT, assert_runs, script_names

BENCHMARKS = ROOT / "benchmarks"


def _runs(w: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """Script name -> (arguments, a line its report must print)."""
    model, data, params, out = str(w["model"]), str(w["data"]), str(w["params"]), w["root"] / "out"
    rows = data + "/training_set/"
    return {
        "allocator": (
            [
                "--model",
                model,
                "--variants",
                "default",
                "tuned",
                "--rounds",
                "1",
                "--grpo-steps",
                "2",
                "--cold-steps",
                "2",
                "--cold-batch",
                "2",
                "--completion-tokens",
                "8",
                "--prompt-tokens",
                "40",
            ],
            "| GRPO | tuned |",
        ),
        "grpo": (["--rounds", "2", "--steps", "2"], "overhead per round: median"),
        "keyframes": (["--n", "1", "--seconds", "3", "--repeat", "1", "--breakdown"], "identical indices yes"),
        "perception": (["--root", str(w["root"])], "per_question"),
        "prefix": (
            ["--model", model, "--rows", rows + "test.jsonl", "--n", "4", "--rounds", "1"],
            "completions differing: 0 of 4",
        ),
        "roofline": (
            [
                "--model",
                model,
                "--prompt-tokens",
                "16",
                "--new-tokens",
                "4",
                "--generations",
                "2",
                "--cold-batch",
                "2",
                "--eval-batch",
                "2",
                "--repeat",
                "1",
                "--markdown",
                f"{out}/roofline.md",
            ],
            "share of roofline",
        ),
        "synthetic": (["--params", params], "blind (text-only) baselines"),
    }


def test_every_benchmark_script_has_a_smoke_run() -> None:
    assert script_names(BENCHMARKS) == set(_runs(dict.fromkeys(("model", "data", "params", "root"), Path("x"))))


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(_runs(dict.fromkeys(("model", "data", "params", "root"), Path("x")))))
def test_benchmark_script_runs_on_the_tiny_model(script: str, workspace: dict[str, Path]) -> None:
    args, expected = _runs(workspace)[script]
    assert_runs([str(BENCHMARKS / f"{script}.py"), *args], cwd=workspace["root"], expected=expected)
