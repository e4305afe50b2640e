"""The command line a user (and every DVC stage) runs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from orchestration.cli import main


def test_a_failed_stage_exits_nonzero_and_prints_the_steps_error(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    # training_set before its upstream exists: the step fails inside Dagster (the run fails too, a second event)
    assert main(["--root", str(tiny_project), "materialize", "training_set"]) == 1
    err = capsys.readouterr().err
    assert "run " in err and "failed" in err
    assert "the data checks of vlm_descriptions have not run" in err  # the step's own error, not only "run failed"


def test_a_bad_params_file_fails_before_dagster_starts(tiny_project: Path, capsys: pytest.CaptureFixture[str]):
    (tiny_project / "params.yaml").write_text("grpo:\n  num_generations: 0\n")
    assert main(["--root", str(tiny_project), "materialize", "raw_videos"]) == 2
    captured = capsys.readouterr()
    assert "grpo.num_generations" in captured.err
    assert not (tiny_project / "data" / "raw").exists()


def test_materialize_reads_the_params_file_given_with_params(
    tiny_project: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch
):
    """``--params`` is the file the assets read, not only the one validated (they read params.yaml before)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    (tiny_project / "other.yaml").write_text(yaml.safe_dump({**tiny_params_dict, "data_dir": "other-data"}))
    assert main(["--root", str(tiny_project), "--params", "other.yaml", "materialize", "raw_videos"]) == 0
    assert list((tiny_project / "other-data" / "raw").iterdir())
    assert not (tiny_project / "data").exists()


def test_a_per_video_asset_without_a_partition_option_names_the_options_before_dagster_starts(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    # "*training_set" selects raw_videos and the per-video keyframes too: Dagster alone fails keyframes' step with
    # "Cannot access partition_key for a non-partitioned run", after raw_videos ran
    assert main(["--root", str(tiny_project), "materialize", "*training_set"]) == 2
    err = capsys.readouterr().err
    assert "keyframes is materialized per video" in err and "--all-partitions" in err and "--partition" in err
    assert not (tiny_project / "data" / "raw").exists(), "nothing runs"


def test_a_misspelt_asset_is_a_one_line_error_with_dagsters_suggestion(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    assert main(["--root", str(tiny_project), "materialize", "keyframe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cannot select 'keyframe'") and '["keyframes"]' in err and "Traceback" not in err
    assert main(["--root", str(tiny_project), "materialize", "keyframes+ and (("]) == 2
    assert "Invalid selection string" in capsys.readouterr().err


@pytest.mark.slow
def test_all_partitions_with_unpartitioned_assets_materializes_each_in_order(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Unpartitioned assets in a command with ``--all-partitions`` run before or after the per-video ones.

    In one partitioned run Dagster skips the unpartitioned assets without an error; the CLI runs them apart.
    """
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))

    def materialized(*assets: str) -> tuple[list[str], list[str]]:
        assert main(["--root", str(tiny_project), "materialize", *assets, "--all-partitions"]) == 0
        out = capsys.readouterr().out.splitlines()
        return [line.split()[1] for line in out if line.startswith("materialized ")], out

    done, _ = materialized("keyframes", "raw_videos")  # raw_videos first: it creates the partitions
    assert done[0] == "raw_videos" and done.count("keyframes") >= 2 and len(done) == 1 + done.count("keyframes")
    done, out = materialized("keyframes", "vlm_descriptions")
    assert done[-1] == "vlm_descriptions" and done.count("keyframes") >= 2, "every video's key frames, then this"
    assert "check vlm_descriptions:descriptions passed" in out
    assert (tiny_project / "data" / "descriptions").is_dir()


def _full_log(err: str) -> Path:
    """The log file a failure paragraph names (``Full log: PATH (...``)."""
    match = re.search(r"Full log: (\S+) \(", err)
    assert match, err
    return Path(match.group(1))


def test_a_user_error_inside_a_step_is_one_paragraph_and_its_trace_is_in_the_log(
    tiny_project: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Issue 36 item 5: a parquet in the wrong format (DatasetFormatError inside raw_videos' step) printed ~100 lines
    of Dagster stack trace; now its own message, the step and where the full log is."""
    from embodied_r.vocabulary import URBAN_CATEGORIES

    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    (tiny_project / "MCQ.parquet").write_text("question,answer\nwhere?,A\n")  # a CSV saved under the parquet's name
    (tiny_project / "videos").mkdir()
    params = {**tiny_params_dict, "data": {**tiny_params_dict["data"], "source": "urbanvideo"}}
    params["data"].update(annotations=str(tiny_project / "MCQ.parquet"), videos_dir=str(tiny_project / "videos"))
    params["data"]["categories"] = list(URBAN_CATEGORIES)
    params["training_set"] = {**params["training_set"], "categories": list(URBAN_CATEGORIES)}
    params["perception"] = {**params["perception"], "backend": "openai", "model": "a-vlm"}  # oracle needs embedded
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))

    assert main(["--root", str(tiny_project), "materialize", "raw_videos"]) == 1
    err = capsys.readouterr().err
    assert f"raw_videos failed: {tiny_project / 'MCQ.parquet'}: not a readable parquet file" in err
    assert "re-download the parquet" in err
    assert "Stack Trace" not in err and "Traceback" not in err and "dagster._core" not in err
    assert len(err.strip().splitlines()) <= 3, err
    log = _full_log(err)
    assert log.parent == tiny_project / ".dagster_home" / "logs"
    assert "embodied_r.data.adapters.common.DatasetFormatError" in log.read_text() and "Stack Trace" in log.read_text()


def test_an_unexpected_error_inside_a_step_is_a_one_line_summary_and_where_the_trace_is(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    raw = tiny_project / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "records.jsonl").write_text("not json\n")  # nothing in the code expects this: a bug's stand-in

    assert main(["--root", str(tiny_project), "materialize", "vlm_descriptions"]) == 1
    err = capsys.readouterr().err
    assert "vlm_descriptions failed with an unexpected error (a bug, please report it): ValidationError:" in err
    assert 'File "' in err and "site-packages" not in err, "the project's line where it happened"
    assert "Stack Trace" not in err and len(err.strip().splitlines()) <= 3, err
    assert "Stack Trace" in _full_log(err).read_text()


@pytest.mark.slow
def test_all_partitions_runs_every_video_of_the_params_files_own_dataset(
    tiny_project: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Issue 36 item 2: raw_videos under A, then under B (two of A's video ids), then keyframes --all-partitions
    under A processed only B's two videos and exited 0; now A's three, keyed by A's data_dir."""
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    synthetic = {**tiny_params_dict["synthetic"], "scenes": 2}
    (tiny_project / "b.yaml").write_text(
        yaml.safe_dump({**tiny_params_dict, "data_dir": "data-b", "synthetic": synthetic})
    )
    root = ["--root", str(tiny_project)]
    assert main([*root, "materialize", "raw_videos"]) == 0
    assert main([*root, "--params", "b.yaml", "materialize", "raw_videos"]) == 0
    capsys.readouterr()

    assert main([*root, "materialize", "keyframes", "--all-partitions"]) == 0
    out = capsys.readouterr().out
    done = {line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if line.startswith("materialized keyframes")}
    videos = json.loads((tiny_project / "data" / "raw" / "videos.json").read_text())
    assert len(videos) == 3 and done == {f"data::{video_id}" for video_id in videos}
    assert not (tiny_project / "data-b" / "keyframes").exists()

    # One video by its id: this dataset's partition.
    first = sorted(videos)[0]
    assert main([*root, "materialize", "keyframes", "--partition", first]) == 0
    assert f"materialized keyframes [data::{first}]" in capsys.readouterr().out

    # One video of another dataset: refused before anything runs, naming the key and the fix.
    assert main([*root, "materialize", "keyframes", "--partition", f"data-b::{sorted(videos)[0]}"]) == 1
    err = capsys.readouterr().err
    assert "are not videos of data_dir 'data', the params file's dataset" in err and "Traceback" not in err


def test_an_unwritable_output_folder_is_one_paragraph_naming_the_path(
    tiny_project: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """An OS error on a path (read-only folder, a file where a folder should be, disk full) is the user's to fix."""
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    (tiny_project / "blocker").write_text("a file where data_dir's parent folder should be")
    (tiny_project / "params.yaml").write_text(yaml.safe_dump({**tiny_params_dict, "data_dir": "blocker/data"}))

    assert main(["--root", str(tiny_project), "materialize", "raw_videos"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("raw_videos failed: [Errno 20] Not a directory:") and "blocker" in err
    assert "that its folder is writable" in err and "Stack Trace" not in err and len(err.strip().splitlines()) <= 3


@pytest.mark.slow
def test_the_multiprocess_executor_is_a_setting_and_runs_each_step_in_its_own_process(
    tiny_project: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Issue 38 item 5: scale-out is configuration. Before, definitions.py pinned the in-process executor and the
    CLI ran every run in its own process; ``orchestration.executor: multiprocess`` now runs a step a process."""
    import os

    import dagster as dg

    home = tiny_project / ".dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    orchestration = {"executor": "multiprocess", "max_concurrent": 2}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump({**tiny_params_dict, "orchestration": orchestration}))
    root = ["--root", str(tiny_project)]
    assert main([*root, "materialize", "raw_videos"]) == 0
    assert main([*root, "materialize", "keyframes", "vlm_descriptions", "--all-partitions"]) == 0
    out = capsys.readouterr().out.splitlines()
    videos = json.loads((tiny_project / "data" / "raw" / "videos.json").read_text())
    keyframes = {line.split("[", 1)[1].rstrip("]") for line in out if line.startswith("materialized keyframes")}
    assert keyframes == {f"data::{video_id}" for video_id in videos}, "every video, as in-process"
    assert "materialized vlm_descriptions" in out and "check vlm_descriptions:descriptions passed" in out
    assert (tiny_project / "data" / "descriptions").is_dir()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        starts = [
            entry.dagster_event
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.is_dagster_event and entry.dagster_event.event_type_value == "STEP_START"
        ]
    steps = {event.step_key for event in starts}
    assert {"raw_videos", "keyframes", "vlm_descriptions"} <= steps
    pids = {event.pid for event in starts}
    assert os.getpid() not in pids and len(pids) == len(starts), "each step in a process of its own"


def test_an_executor_that_cannot_be_imported_is_one_line_before_anything_runs(
    tiny_project: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    orchestration = {"executor": "dagster_k8s:k8s_job_executor"}  # not installed here
    (tiny_project / "params.yaml").write_text(yaml.safe_dump({**tiny_params_dict, "orchestration": orchestration}))
    assert main(["--root", str(tiny_project), "materialize", "raw_videos"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("orchestration.executor 'dagster_k8s:k8s_job_executor' cannot be imported")
    assert "pip install" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tiny_project / "data").exists()


def _profiles(root: Path) -> None:
    """Two profiles to compose in ``root``: one sets a key of its own and one the other sets too."""
    (root / "profiles").mkdir()
    (root / "profiles" / "fewer.yaml").write_text("# fewer\nsynthetic:\n  questions_per_video: 4\n  scenes: 2\n")
    elsewhere = {"data_dir": "other-data", "synthetic": {"scenes": 3}, "orchestration": {"executor": "multiprocess"}}
    (root / "profiles" / "elsewhere.yaml").write_text("# elsewhere\n" + yaml.safe_dump(elsewhere))


@pytest.mark.slow
def test_materialize_with_profiles_runs_on_their_composition_tags_the_run_and_writes_no_params(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """Issue 37 item 4: ``--profile a,b`` composes on top of the params file for Dagster's runs, params.yaml
    untouched; the multiprocess executor (the profile's) rebuilds the job with the profiles in every step."""
    import dagster as dg

    from orchestration.cli import PROFILE_TAG

    home = tiny_project / ".dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    _profiles(tiny_project)
    before = (tiny_project / "params.yaml").read_bytes()
    argv = ["--root", str(tiny_project), "materialize", "raw_videos", "--profile", "fewer,elsewhere"]
    assert main(argv) == 0
    assert (
        "with profile(s) fewer,elsewhere on top, not written (profile 'test+fewer+elsewhere')"
        in capsys.readouterr().out
    )
    assert (tiny_project / "params.yaml").read_bytes() == before
    summary = json.loads((tiny_project / "other-data" / "raw" / "summary.json").read_text())
    assert summary["videos"] == 3 and 0 < summary["questions"] <= 3 * 4, "elsewhere's 3 scenes won; fewer's 4"
    assert not (tiny_project / "data").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        starts = [e for e in instance.all_logs(run.run_id) if e.is_dagster_event and e.dagster_event.is_step_start]
    assert run.tags[PROFILE_TAG] == "test+fewer+elsewhere"
    assert starts and all(e.dagster_event.pid != os.getpid() for e in starts), "the profile's executor ran it"


def test_an_unknown_profile_fails_materialize_and_ui_before_anything_starts(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    _profiles(tiny_project)
    assert main(["--root", str(tiny_project), "materialize", "raw_videos", "--profile", "fewer,nope"]) == 2
    assert "unknown profile 'nope'; available: demo, elsewhere, fewer" in capsys.readouterr().err
    assert main(["--root", str(tiny_project), "ui", "--profile", "nope", "--port", "1"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert not (tiny_project / "data").exists()


def test_the_ui_code_location_reads_the_profiles_embodied_r_ui_names(tiny_project: Path):
    """``embodied-r ui --profile`` passes them in EMBODIED_R_PROFILES; the code location shows them as the project
    resource's config and its runs read (and run on the executor of) the composition."""
    import subprocess
    import sys

    from orchestration.definitions import UI_PARAMS_ENV, UI_PROFILES_ENV, UI_ROOT_ENV
    from tests.conftest import PROJECT_ROOT

    _profiles(tiny_project)
    code = (
        "from orchestration.definitions import defs\n"
        "print(defs.resources['project'].profiles, defs.resolve_implicit_global_asset_job_def().executor_def.name)"
    )
    env = {**os.environ, UI_ROOT_ENV: str(tiny_project), UI_PARAMS_ENV: "params.yaml", UI_PROFILES_ENV: "elsewhere"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["elsewhere", "multiprocess"]
