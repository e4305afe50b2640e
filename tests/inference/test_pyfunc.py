"""The logged chain with a real VLM backend: a video sent as base64 bytes, perception over HTTP, no key in the model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.perception.fake_openai_server import DEFAULT_ANSWER, FakeOpenAIServer

SECRET = "sk-test-never-logged-0123456789"


@pytest.mark.slow
def test_logged_chain_answers_base64_video_through_the_vlm_and_keeps_no_key(tiny_lineage, tmp_path, monkeypatch):
    import cv2
    import mlflow
    import pandas as pd

    from embodied_r.config import load_params
    from embodied_r.inference import InferenceSettings
    from embodied_r.tracking import configure_tracking, log_and_register_lm

    root = tiny_lineage.root
    question = tiny_lineage.test_question()
    # a video of no dataset (other pictures), as a client would upload it
    clip = tmp_path / "clip.mp4"
    reader = cv2.VideoCapture(str(question.video))
    size = (int(reader.get(cv2.CAP_PROP_FRAME_WIDTH)), int(reader.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), reader.get(cv2.CAP_PROP_FPS), size)
    while (frame := reader.read())[0]:
        writer.write(255 - frame[1])
    writer.release()
    reader.release()

    params = load_params(root / "params.yaml")
    monkeypatch.setenv("EMBODIED_R_TEST_VLM_KEY", SECRET)
    with FakeOpenAIServer() as server:
        vlm = {"backend": "openai", "model": "fake-vlm", "base_url": server.base_url,
               "api_key_env": "EMBODIED_R_TEST_VLM_KEY", "max_retries": 0}  # fmt: skip
        perception = params.perception.model_copy(update=vlm)
        settings = InferenceSettings.from_params(params.model_copy(update={"perception": perception}))
        configure_tracking(params.tracking, root)
        experiment = mlflow.get_experiment_by_name(params.tracking.experiment).experiment_id
        run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
        weights = root / "data" / "models" / "grpo_lm"
        uri, version = log_and_register_lm(weights, "embodied-r-vlm", run_id, settings=settings)
        model = mlflow.pyfunc.load_model(f"models:/embodied-r-vlm/{version}")
        rows = pd.DataFrame([
            {"video_base64": base64.b64encode(clip.read_bytes()).decode(), "video_name": "clip.mp4",
             "question": question.stem, "options": question.options},
            {"video_base64": "this is not base64 !", "question": question.stem, "options": question.options},
        ])  # fmt: skip
        answer, bad = model.predict(rows)
        requests = list(server.requests)

    assert answer["error"] is None, answer["error"]
    assert answer["descriptions"][0] == DEFAULT_ANSWER and len(requests) == len(answer["keyframe_indices"])
    assert all(r["authorization"] == f"Bearer {SECRET}" for r in requests), "the key comes from the server's env"
    assert answer["completion"] and answer["seconds"]["generation"] > 0
    assert bad["letter"] is None and "not base64" in bad["error"]

    logged = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "logged"))
    texts = [p.read_text(errors="ignore") for p in Path(logged).rglob("*") if p.is_file()]
    assert not any(SECRET in text for text in texts), "the API key never travels with the model"
    saved = json.loads(next(p for p in Path(logged).rglob("settings.json")).read_text())
    assert saved["perception"]["api_key_env"] == "EMBODIED_R_TEST_VLM_KEY"
    assert saved["perception"]["base_url"] == perception.base_url
