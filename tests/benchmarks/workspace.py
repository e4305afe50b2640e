"""The tiny project the script smoke runs work in, and how a script is run: shared by ``tests/benchmarks`` and
``tests/experiments`` (each runs its own folder's scripts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def tiny_workspace(root: Path, *, keyframes: bool) -> dict[str, Path]:
    """A tiny project under ``root``: the tiny LM, training rows, a base_lm pointer and the tiny profile's params;
    with ``keyframes``, its synthetic world ingested and key frames extracted (what ``benchmarks/perception.py``
    reads)."""
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from embodied_r.profiles import deep_merge, profile_changes

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
    if keyframes:
        from embodied_r.config import load_params
        from embodied_r.data.ingest import ingest, read_videos
        from embodied_r.keyframes import extract_many
        from embodied_r.layout import Layout

        loaded = load_params(root / "params.yaml")
        layout = Layout(root=root, data_dir=loaded.data_dir)
        ingest(loaded, layout.raw, progress=False)
        videos = {vid: Path(entry["path"]) for vid, entry in read_videos(layout.raw).items()}
        extract_many(videos, loaded.keyframes, layout.keyframes, progress=False)
    return {"root": root, "model": model, "data": data, "params": root / "params.yaml"}


def script_names(folder: Path) -> set[str]:
    """The scripts of ``folder`` (``benchmarks`` or ``experiments``), by name."""
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def assert_runs(command: list[str], cwd: Path, expected: str) -> None:
    """``python <command>`` in ``cwd`` as a user runs it (offline; no PYTHONPATH of the test's own) exits 0 and
    prints ``expected``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert expected in result.stdout
