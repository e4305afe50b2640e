"""embodied_r.runtime: the allocator and thread set-up of a stage's process does what it says, counted by the kernel.

Each case runs a real Python process (the allocator is chosen at start-up, so the test's own process cannot be the
subject) and reads its minor page faults from ``getrusage``: counters, not timings, so a busy machine does not
change the verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embodied_r.config import ParamsError, RuntimeConfig, parse_params
from embodied_r.runtime import glibc, malloc_environment

ROOT = Path(__file__).resolve().parents[1]

#: Allocates and frees a 64 MiB tensor 24 times (as a training step does with its activations) and prints the minor
#: page faults of the last 12 rounds: by then a heap that keeps freed memory has settled and faults no more.
LOOP = """
import json, os, resource, sys
if sys.argv[1] == "tune":
    from embodied_r.config import RuntimeConfig
    from embodied_r.runtime import tune_process
    tune_process(RuntimeConfig(**json.loads(sys.argv[2])))
import torch
counts = []
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(16 * 2**20)  # 64 MiB of fp32
    block.fill_(1.0)  # touch every page
    del block
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": sum(counts[12:]), "threads": torch.get_num_threads(),
                  "env": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "OMP_", "EMBODIED_R"))}}))
"""
PAGES_64_MIB = 64 * 2**20 // 4096

pytestmark = pytest.mark.skipif(glibc() is None, reason="the allocator settings are glibc's")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OMP_NUM_THREADS", "EMBODIED_R_RUN"))}
    return {**env, **extra}


def _loop(*args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LOOP, *args], env=env or _clean_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tune_process_stops_a_freed_64_mib_tensor_from_being_faulted_in_again_every_time() -> None:
    untuned = _loop("none")
    tuned = _loop("tune", json.dumps({"malloc_keep_freed": True}))
    # glibc's default: every 64 MiB block is a fresh mmap, all of its pages faulted in again each round
    assert untuned["faults"] >= 12 * PAGES_64_MIB * 0.9
    # kept for reuse: the same pages serve every round (a few faults of the interpreter's own, far below one block)
    assert tuned["faults"] < PAGES_64_MIB / 4
    assert tuned["env"]["MALLOC_MMAP_MAX_"] == "0"


def test_keep_freed_false_leaves_glibcs_defaults() -> None:
    untouched = _loop("tune", json.dumps({"malloc_keep_freed": False}))
    assert untouched["faults"] >= 12 * PAGES_64_MIB * 0.9
    assert RuntimeConfig().malloc_keep_freed is False  # the default: no gain measured (docs/roofline.md)
    assert not any(k.startswith("MALLOC_") for k in untouched["env"])


def test_a_process_started_after_tune_process_is_tuned_the_same_way_without_calling_it() -> None:
    """What Dagster's multiprocess steps and torchrun workers inherit: glibc reads the exported MALLOC_* itself."""
    script = (
        "import os, subprocess, sys\n"
        "from embodied_r.runtime import tune_process\n"
        "from embodied_r.config import RuntimeConfig\n"
        "tune_process(RuntimeConfig(malloc_keep_freed=True))\n"
        "sys.exit(subprocess.run([sys.executable, '-c', sys.argv[1], 'none']).returncode)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, LOOP], env=_clean_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["faults"] < PAGES_64_MIB / 4
    assert json.loads(child["env"]["EMBODIED_R_RUNTIME"])["malloc_keep_freed"] is True


def test_torch_threads_sets_the_intra_op_threads_of_the_process_and_its_children() -> None:
    one = _loop("tune", json.dumps({"torch_threads": 1, "malloc_keep_freed": False}))
    assert one["threads"] == 1
    assert one["env"]["OMP_NUM_THREADS"] == "1"


def test_the_runtime_section_is_validated_and_its_settings_are_what_glibc_reads() -> None:
    assert parse_params({}).runtime == RuntimeConfig()
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["runtime"] == RuntimeConfig().model_dump()
    with pytest.raises(ParamsError, match=r"runtime\.malloc_trim_threshold_mb"):
        parse_params({"runtime": {"malloc_trim_threshold_mb": 4096}})  # mallopt takes an int: at most 2047 MiB
    assert malloc_environment(RuntimeConfig(malloc_keep_freed=True, malloc_arena_max=2)) == {
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(1024 * 2**20),
        "MALLOC_ARENA_MAX": "2",
    }
    assert malloc_environment(RuntimeConfig()) == {}


def test_materialize_tunes_its_process_with_the_params_files_runtime_section(tmp_path: Path) -> None:
    """Every DVC stage is ``embodied-r materialize``: it applies ``runtime`` before any step runs."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["runtime"].update(malloc_keep_freed=True, malloc_arena_max=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "-v", "--root", str(tmp_path), "materialize", "no_such_asset"],
        env=_clean_env(DAGSTER_HOME=str(tmp_path / "dagster")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]  # the misspelt asset, after the set-up
    assert "runtime: MALLOC_ARENA_MAX=3, MALLOC_MMAP_MAX_=0" in result.stderr


def test_a_stage_process_loads_no_torch_before_its_step_needs_it() -> None:
    """``embodied-r materialize`` builds the Dagster definitions before anything runs; they import no torch,
    transformers or MLflow, so the stages that never train start in a fraction of the time (issue 40)."""
    code = (
        "import sys\n"
        "from orchestration.definitions import build_definitions\n"
        "from orchestration.resources import ProjectResource\n"
        "build_definitions(ProjectResource(root='.', params_file='params.yaml'))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'mlflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
