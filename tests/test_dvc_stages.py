"""dvc.yaml's deps and params are what each stage really runs and reads (issue 37, item 1).

The slow tests run every stage of ``dvc.yaml`` on the tiny profile, in-process under the tracer of
:mod:`tests.dvc_trace`, in a git + DVC copy of the project: each stage's entry must list the code it ran and the
params keys it read, and nothing it never touches; then real DVC, on the outputs those runs made, must see a
renamed ``tracking.registered_model`` (the issue's reproduction: it used to say "up to date").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.dvc_trace import StageTrace, definition_modules, dvc_param_keys, stage_problems, trace_stages

DVC = PROJECT_ROOT / ".venv-dvc" / "bin" / "dvc"


def _dvc() -> str:
    dvc = shutil.which("dvc") or (str(DVC) if DVC.is_file() else None)
    assert dvc, "dvc is not installed: `make setup` installs it in .venv-dvc"
    return dvc


def _run(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _drop_a_video_in_the_inbox(root: Path) -> None:
    """One of the lineage's videos, under a new name, and its questions in the inbox: what ``predictions``
    answers (with an empty inbox it runs nothing)."""
    from embodied_r.config import load_params
    from embodied_r.data.ingest import read_videos
    from embodied_r.data.records import read_records
    from embodied_r.layout import Layout

    params = load_params(root / "params.yaml")
    layout = Layout(root=root, data_dir=params.data_dir)
    video_id, video = next(iter(read_videos(layout.raw).items()))
    inbox = root / params.predictions.inbox
    inbox.mkdir(exist_ok=True)
    shutil.copy(video["path"], inbox / "clip_a.mp4")
    rows = [
        r.to_official() | {"Question_id": f"clip_a-{r.question_id}", "video_id": "clip_a"}
        for r in read_records(layout.records)
        if r.video_id == video_id
    ]
    (inbox / params.predictions.questions_file).write_text(json.dumps(rows))


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, StageTrace]]:
    """A git + DVC copy of the project on the tiny profile, every dvc.yaml stage run in it under the tracer."""
    from embodied_r.profiles import deep_merge, profile_changes

    tmp = tmp_path_factory.mktemp("dvc_stages")
    root = tmp / "project"
    for name in ("src", "orchestration", "profiles"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    params = deep_merge(
        yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text()), profile_changes(PROJECT_ROOT, "tiny")
    )
    params["lm"]["cache_dir"] = str(tmp / "models")  # the tiny random LM is built here, not in ~/.cache
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("/data/\n/mlruns/\n/.cache/\n/.dagster_home/\n")
    _run(["git", "init", "-q"], root)
    _run([_dvc(), "init", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "tiny"], root)

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    before = {"predictions": _drop_a_video_in_the_inbox} if "predictions" in stages else {}
    saved_home = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(tmp / "dagster_home")
    try:
        traces = trace_stages(root, stages, PROJECT_ROOT, before)
    finally:
        if saved_home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved_home
    return root, stages, traces


@pytest.mark.slow
def test_every_stage_lists_the_code_it_runs_and_the_params_it_reads(traced):
    _, stages, traces = traced
    assert set(traces) == set(stages)
    # dvc.yaml is read against the committed params.yaml (what `dvc repro` watches), not the tiny copy
    params_file = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    problems = [p for name in stages for p in stage_problems(name, stages[name], traces[name], params_file)]
    assert not problems, (
        "dvc.yaml does not match what the stages run and read (traced on the tiny profile; rules in "
        "tests/dvc_trace.py and dvc.yaml's header):\n" + "\n".join(problems)
    )


@pytest.mark.slow
def test_dvc_status_sees_a_renamed_registered_model(traced):
    """The issue's reproduction: renaming tracking.registered_model left `dvc status` up to date."""
    root, _, traces = traced
    readers = {name for name, trace in traces.items() if "tracking.registered_model" in trace.params}
    assert {"grpo_lm", "evaluation_results"} <= readers  # grpo registers under it, evaluation promotes under it
    dvc = _dvc()
    _run([dvc, "commit", "-f", "-q"], root)  # the lock of the outputs the traced runs made
    assert "Data and pipelines are up to date" in _run([dvc, "status"], root)

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tracking"]["registered_model"] = "embodied-r-lm-renamed"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(_run([dvc, "status", "--json"], root))
    changed = {
        name
        for name, changes in status.items()
        for change in changes
        if isinstance(change, dict)
        and "tracking.registered_model" in change.get("changed deps", {}).get("params.yaml", {})
    }
    assert readers <= changed, status
    assert not changed & {"raw_videos", "keyframes", "vlm_descriptions", "base_lm"}, status


PARAMS_FILE = {"grpo": {"beta": 0.0, "epochs": 1}, "data": {"categories": ["a"]}, "data_dir": "data", "lm": {}}


def _problems(spec: dict, files: set[str] = frozenset(), params: set[str] = frozenset()) -> list[str]:
    return stage_problems(
        "s", {"cmd": "embodied-r materialize s", **spec}, StageTrace(set(files), set(params)), PARAMS_FILE
    )


def test_a_folder_dep_covers_its_files_and_a_folder_none_of_whose_files_run_is_extra():
    spec = {
        "deps": ["${data_dir}/raw", "src/embodied_r/data", "src/embodied_r/keyframes", "orchestration/assets/data.py"]
    }
    files = {"src/embodied_r/data/ingest.py", "orchestration/assets/data.py", "src/embodied_r/layout.py"}
    assert _problems(spec, files) == [
        "dvc.yaml stage 's': deps misses code the stage runs — add: src/embodied_r/layout.py",
        "dvc.yaml stage 's': deps lists code the stage never runs — remove: src/embodied_r/keyframes",
    ]


def test_a_section_covers_its_keys_and_a_key_never_read_is_extra():
    spec = {"params": ["grpo", "data_dir", "lm"]}
    assert _problems(spec, params={"grpo.beta", "data_dir", "data.categories"}) == [
        "dvc.yaml stage 's': params misses keys the stage reads — add: data.categories",
        "dvc.yaml stage 's': params lists keys the stage never reads — remove: lm",
    ]
    assert _problems({"params": ["grpo.beta"]}, params={"grpo.beta"}) == []


def test_a_key_params_yaml_does_not_set_is_watched_where_its_value_comes_from():
    # DVC refuses a key missing from params.yaml: a code default is watched through its section, a derived
    # default (training_set.categories defaults to data.categories) through the key it is copied from
    assert dvc_param_keys({"grpo.seed", "training_set.categories", "lm.base", "predictions.inbox"}, PARAMS_FILE) == {
        "grpo",
        "data.categories",
        "lm",
    }


def test_a_definitions_only_module_counts_when_code_that_ran_imports_it():
    # dataset.py imports the TrainingRow schema at module level; tiny.py only inside write_tiny_rows, which the
    # base_lm stage never calls (it builds the model, not rows)
    rows = "src/embodied_r/training/rows.py"
    assert rows in definition_modules(PROJECT_ROOT, {"src/embodied_r/training/dataset.py"})
    assert rows not in definition_modules(PROJECT_ROOT, {"src/embodied_r/models/tiny.py"})
