"""The registered model is the whole chain: ``mlflow models serve`` answers a real HTTP request as evaluation did,
and each version carries its model card."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def _wait_for_ping(url: str, process: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow models serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1.0)
    pytest.fail(f"mlflow models serve did not answer /ping in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_served_champion_answers_a_test_question_as_evaluation_did(tiny_lineage, tmp_path):
    root = tiny_lineage.root
    question = tiny_lineage.test_question()
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
           "PYTHONPATH": str(PROJECT_ROOT)}  # fmt: skip
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    argv = [str(mlflow_cli), "models", "serve", "-m", "models:/embodied-r-lm@champion", "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_ping(f"http://127.0.0.1:{port}/ping", process, log)
        rows = [
            # a path relative to the server's working directory (the project root), as the input example has it
            {"video": str(question.video.relative_to(root)), "question": question.stem, "options": question.options},
            {"question": "Which way?", "options": ["left", "right"]},  # no video: this row's error, not the batch's
        ]
        predictions = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_records": rows})["predictions"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    answer, bad = predictions
    assert answer["error"] is None, answer["error"]
    assert answer["letter"] == question.sample["letter"]
    assert answer["completion"].endswith(question.sample["completion"]), "evaluation's greedy completion"
    assert answer["completion"].removesuffix(question.sample["completion"]) in ("", "<think>"), "the think prefill"
    assert answer["descriptions"] == question.descriptions
    assert answer["provenance"]["registered_model"] == "embodied-r-lm" and answer["provenance"]["run_id"]
    assert answer["model"] == "embodied-r-lm v1" and answer["provenance"]["version"] == "1"
    assert bad["letter"] is None and "no video" in bad["error"]


@pytest.mark.slow
def test_registered_version_has_signature_example_settings_and_card(tiny_lineage, tmp_path):
    import mlflow

    from embodied_r.config import load_params
    from embodied_r.tracking import configure_tracking

    root = tiny_lineage.root
    params = load_params(root / "params.yaml")
    configure_tracking(params.tracking, root)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("embodied-r-lm", "champion")
    info = mlflow.models.get_model_info("models:/embodied-r-lm@champion")
    assert [c["name"] for c in info.signature.inputs.to_dict()] == [
        "question", "options", "video", "video_base64", "video_name"]  # fmt: skip
    assert {"letter", "think", "provenance"} <= {c["name"] for c in info.signature.outputs.to_dict()}
    logged = Path(mlflow.artifacts.download_artifacts("models:/embodied-r-lm@champion", dst_path=str(tmp_path)))
    example = json.loads((logged / "input_example.json").read_text())
    assert not Path(example["video"]).is_absolute() and (root / example["video"]).is_file()
    settings = json.loads((logged / "artifacts" / "settings.json").read_text())
    assert settings["perception"]["backend"] == "oracle" and settings["perception"]["api_key_env"] == "OPENAI_API_KEY"
    assert settings["max_new_tokens"] == params.evaluation.max_new_tokens

    card = version.description
    run = client.get_run(version.run_id)
    results = json.loads((root / "data" / "evaluation" / "results.json").read_text())
    accuracy = results["aggregate"]["pooled_accuracy"]
    low, high = results["aggregate"]["pooled_accuracy_ci95"]
    assert card.startswith(f"# embodied-r-lm v{version.version}")
    assert "## Data and split" in card and "per split" in card
    assert "Deviations from the paper" in card and "`grpo.num_generations`: 2 (paper: 8)" in card
    assert f"MLflow run {version.run_id}" in card and f"Dagster run {run.data.tags['dagster.run_id']}" in card
    assert "git commit" in card and "DVC" in card
    assert f"pooled accuracy {100 * accuracy:.1f}% [{100 * low:.1f}%, {100 * high:.1f}%]" in card
    assert "promotion: " in card and str(root) not in card and "/tmp/" not in card

    # at registration, before evaluation_results scores it, the card says so
    from embodied_r.inference.card import model_card
    from embodied_r.layout import Layout

    early = model_card(params, Layout(root), registered_model="embodied-r-lm", version="1", run_id=version.run_id)
    assert "Not evaluated yet" in early and "pooled accuracy" not in early
