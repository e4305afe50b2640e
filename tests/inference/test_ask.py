"""``Asker`` / ``embodied-r ask`` on a held-out test question of a tiny lineage: evaluation's answer, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embodied_r.cli import main
from embodied_r.inference.chain import InferenceError, question_choices

CHAMPION = "models:/embodied-r-lm@champion"


def _ask(root: Path, *argv: str) -> list[str]:
    return ["--root", str(root), "ask", *argv]


def test_question_choices_compose_as_ingest():
    from embodied_r.data.records import compose_question

    text, choices = question_choices("Where is the door?", ["left", "(B) right", "C. behind"])
    assert choices == {"A": "left", "B": "right", "C": "behind"}
    assert text == compose_question("Where is the door?", choices)
    lettered = "Where?\nA. left\nB. right"
    assert question_choices(lettered, []) == (lettered, {"A": "left", "B": "right"})
    assert question_choices("How far is it?", []) == ("How far is it?", {})  # numeric
    with pytest.raises(InferenceError, match="empty"):
        question_choices("  ", ["a"])


@pytest.mark.slow
def test_ask_gives_evaluations_answer_to_a_test_question(tiny_lineage):
    """The chain over the champion: the same descriptions, the same prompt and the same greedy completion (hence
    answer) as ``evaluation_results`` for a held-out test question."""
    from embodied_r.config import load_params
    from embodied_r.evaluation.generate import read_think_prefill
    from embodied_r.inference import Asker

    root = tiny_lineage.root
    params = load_params(root / "params.yaml")
    asker = Asker(params, root, CHAMPION)
    assert asker.model == "embodied-r-lm v1"
    for index in (0, 1):
        question = tiny_lineage.test_question(index)
        answer = asker.ask(question.video, question.stem, question.options)
        assert answer.descriptions == question.descriptions
        assert answer.prompt == question.row["prompt"], "the LM reads exactly the training set's test row"
        # (prompt_tokens may differ by the prefill's token: the row counted them with the base LM's chat template)
        prefill = read_think_prefill(root / "data" / "models" / "grpo_lm") or ""
        assert answer.completion == prefill + question.sample["completion"]
        assert answer.letter == question.sample["letter"]
        assert (answer.think or None) == question.sample["think"]
        assert answer.truncated == question.sample["truncated"]
        assert set(answer.seconds) == {"keyframes", "perception", "prompt", "generation", "load"}


@pytest.mark.slow
def test_ask_command_readable_and_json(tiny_lineage, capsys):
    root = tiny_lineage.root
    question = tiny_lineage.test_question()
    options = [arg for option in question.options for arg in ("--option", option)]
    assert main(_ask(root, "--video", str(question.video), "--question", question.stem, *options, "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "embodied-r-lm v1" and out["letter"] == question.sample["letter"]
    assert out["keyframe_indices"] and len(out["descriptions"]) == len(out["keyframe_indices"])
    assert {"keyframes", "perception", "prompt", "generation", "load"} == set(out["seconds"])

    assert main(_ask(root, "--video", str(question.video), "--question", question.stem, *options)) == 0
    text = capsys.readouterr().out
    assert text.startswith("Answer: ") and "Model:  embodied-r-lm v1" in text
    assert f"Key frames {out['keyframe_indices']}:" in text and "Seconds: keyframes" in text


def _one_message(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    return captured.err.strip()


@pytest.mark.slow
def test_ask_bad_input_is_one_message_exit_2(tiny_lineage, capsys, tmp_path):
    import cv2
    import numpy as np
    import yaml

    root = tiny_lineage.root
    question = tiny_lineage.test_question()
    ask = ["--question", question.stem, "--option", "left", "--option", "right"]

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    assert main(_ask(root, "--video", str(broken), *ask)) == 2
    assert str(broken) in _one_message(capsys)

    assert main(_ask(root, "--video", str(tmp_path / "missing.mp4"), *ask)) == 2
    assert "no such file" in _one_message(capsys)

    short = tmp_path / "short.mp4"  # two frames: fewer than keyframes.min_frames samples
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 48))
    for _ in range(2):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert main(_ask(root, "--video", str(short), *ask)) == 2
    message = _one_message(capsys)
    assert str(short) in message and "too_short" in message

    assert main(_ask(root, "--video", str(question.video), *ask, "--model", "models:/embodied-r-lm@nope")) == 2
    message = _one_message(capsys)
    assert "models:/embodied-r-lm@nope" in message and "v1" in message and "aliases champion" in message

    # a real video (not the embedded world's: no ground truth) with the oracle backend: it needs openai or transformers
    elsewhere = tmp_path / "mine" / "clip.mp4"
    elsewhere.parent.mkdir()
    reader = cv2.VideoCapture(str(question.video))
    writer = cv2.VideoWriter(
        str(elsewhere),
        cv2.VideoWriter_fourcc(*"mp4v"),
        reader.get(cv2.CAP_PROP_FPS),
        (int(reader.get(cv2.CAP_PROP_FRAME_WIDTH)), int(reader.get(cv2.CAP_PROP_FRAME_HEIGHT))),
    )
    while (frame := reader.read())[0]:
        writer.write(255 - frame[1])  # other pictures: not a video of the dataset
    writer.release()
    reader.release()
    assert main(_ask(root, "--video", str(elsewhere), *ask)) == 2
    message = _one_message(capsys)
    assert "oracle" in message and "openai" in message and "transformers" in message

    # the openai backend with no server listening
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["perception"].update(backend="openai", model="some-vlm", base_url="http://127.0.0.1:9/v1",
                                max_retries=0, timeout_s=5.0, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    (root / "params-openai.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    argv = ["--root", str(root), "--params", "params-openai.yaml", "ask", "--video", str(elsewhere), *ask]
    assert main(argv) == 2
    message = _one_message(capsys)
    assert "http://127.0.0.1:9/v1" in message and "running" in message
