"""The command line a user (and every DVC stage) runs."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert not (tiny_project / "data" / "raw_videos").exists()
