"""Every script in ``benchmarks/`` runs, as a user runs it (``python benchmarks/NAME.py ...``), on the tiny model.

A benchmark that nobody runs rots silently: ``benchmarks/grpo.py`` imported a test fixture by path and failed at
start-up for weeks after the fixture moved. Each script here runs once, in a subprocess from a scratch folder, with
the smallest arguments that still go through all of its code paths; the test checks its exit code and the line its
report must print. A new script without an entry in ``RUNS`` fails ``test_every_benchmark_script_has_a_smoke_run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny project: the tiny LM, training rows, a base_lm pointer, the tiny profile's params, and its synthetic
    world ingested with key frames extracted (what ``benchmarks/perception.py`` reads)."""
    from embodied_r.config import load_params
    from embodied_r.data.ingest import ingest, read_videos
    from embodied_r.keyframes import extract_many
    from embodied_r.layout import Layout
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from embodied_r.profiles import deep_merge, profile_changes

    root = tmp_path_factory.mktemp("bench_project")
    model = build_tiny_lm(root / "tiny_lm")
    data = root / "data"
    (data / "training_set").mkdir(parents=True)
    write_tiny_rows(data / "training_set" / "train.jsonl", n=6)
    write_tiny_rows(data / "training_set" / "test.jsonl", n=4, split="test")
    (data / "models").mkdir()
    (data / "models" / "base_lm.json").write_text(json.dumps({"path": str(model)}))

    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), profile_changes(ROOT, "tiny"))
    params["profile"] = "test"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(root / "params.yaml")
    layout = Layout(root=root, data_dir=loaded.data_dir)
    ingest(loaded, layout.raw, progress=False)
    videos = {vid: Path(entry["path"]) for vid, entry in read_videos(layout.raw).items()}
    extract_many(videos, loaded.keyframes, layout.keyframes, progress=False)
    return {"root": root, "model": model, "data": data, "params": root / "params.yaml"}


def _runs(w: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """Script name -> (arguments, a line its report must print)."""
    model, data, params, out = str(w["model"]), str(w["data"]), str(w["params"]), w["root"] / "out"
    rows = data + "/training_set/"
    return {
        "grpo": (["--rounds", "2", "--steps", "2"], "overhead per round: median"),
        "keyframes": (["--n", "1", "--seconds", "3", "--repeat", "1"], "identical indices yes"),
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
        "synthetic": (["--params", params], "blind (text-only) baselines"),
    }


def test_every_benchmark_script_has_a_smoke_run() -> None:
    scripts = {p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__"}
    assert scripts == set(_runs(dict.fromkeys(("model", "data", "params", "root"), Path("x"))))


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(_runs(dict.fromkeys(("model", "data", "params", "root"), Path("x")))))
def test_benchmark_script_runs_on_the_tiny_model(script: str, workspace: dict[str, Path]) -> None:
    args, expected = _runs(workspace)[script]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # no PYTHONPATH: as a user runs it
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *args],
        cwd=workspace["root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"benchmarks/{script}.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert expected in result.stdout
