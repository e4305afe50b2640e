"""The command line a user (and every DVC stage) runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embodied_r.cli import main


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
