"""The inbox: its videos by id, its questions file read with the official adapter's rules, one bad row apart."""

import json
import os

import pytest

from embodied_r.config import parse_params
from embodied_r.predictions import InboxError, read_inbox

QUESTION = "Question: Which did you see first?\nA. the red chair\nB. the blue table\nC. the lamp"


def _write(folder, rows):
    (folder / "questions.json").write_text(json.dumps(rows), encoding="utf-8")


def test_questions_by_video_with_bad_rows_kept_apart(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"video")
    (tmp_path / "other.MOV").write_bytes(b"video")
    (tmp_path / "notes.txt").write_text("not a video")
    _write(tmp_path, [
        {"Question_id": "q1", "video_id": "clip.mp4", "question": QUESTION},  # the file name names the video too
        {"Question_id": "q2", "video_id": "clip", "question": QUESTION, "answer": "(B)", "question_category": "x"},
        {"Question_id": "q3", "video_id": "clip", "question": "How far is the door?"},  # no choices
        {"Question_id": "q2", "video_id": "other", "question": QUESTION},  # duplicate id
        {"Question_id": "q4", "video_id": "other", "question": QUESTION, "answer": "E"},  # not a choice
        {"video_id": "other", "question": QUESTION},  # no id
        ["not", "an", "object"],
    ])  # fmt: skip
    inbox = read_inbox(tmp_path, "questions.json")
    assert sorted(inbox.videos) == ["clip", "other"]
    clip = inbox.questions["clip"]
    assert [q.question_id for q in clip] == ["q1", "q2"]
    assert clip[0].stem == "Question: Which did you see first?"
    assert clip[0].choices == {"A": "the red chair", "B": "the blue table", "C": "the lamp"}
    assert (clip[0].answer, clip[1].answer, clip[1].category) == (None, "B", "x")
    assert "other" not in inbox.questions
    assert [p["question_id"] for p in inbox.problems["clip"]] == ["q3"]
    assert "no lettered choice lines" in inbox.problems["clip"][0]["error"]
    assert "fix the row in" in inbox.problems["clip"][0]["error"]
    other = inbox.problems["other"]
    assert [p["question_id"] for p in other] == ["q2", "q4", "questions.json row 5"]
    assert "duplicate_id" in other[0]["error"] and "answer_not_in_choices" in other[1]["error"]
    assert [p["question_id"] for p in inbox.problems[""]] == ["questions.json row 6"]


def test_fingerprint_follows_the_file_and_its_own_questions(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"video a")
    (tmp_path / "b.mp4").write_bytes(b"video b")
    rows = [{"Question_id": "q1", "video_id": "a", "question": QUESTION},
            {"Question_id": "q2", "video_id": "b", "question": QUESTION}]  # fmt: skip
    _write(tmp_path, rows)
    before = read_inbox(tmp_path, "questions.json")
    _write(tmp_path, [*rows, {"Question_id": "q3", "video_id": "b", "question": QUESTION}])
    after = read_inbox(tmp_path, "questions.json")
    assert after.fingerprint("a") == before.fingerprint("a"), "another video's questions change nothing of a"
    assert after.fingerprint("b") != before.fingerprint("b")
    os.utime(tmp_path / "a.mp4", ns=(1, 1))  # a replaced file: another modification time
    assert read_inbox(tmp_path, "questions.json").fingerprint("a") != before.fingerprint("a")


def test_two_files_one_name_are_left_out_with_why(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"1")
    (tmp_path / "clip.avi").write_bytes(b"2")
    inbox = read_inbox(tmp_path, "questions.json")  # no questions file yet: no question, no error
    assert inbox.videos == {} and inbox.questions == {}
    assert "clip.avi, clip.mp4" in inbox.ambiguous["clip"] and "rename or remove" in inbox.ambiguous["clip"]


@pytest.mark.parametrize("text, expected", [("{not json", "not valid JSON"), ('{"a": 1}', "top level is a dict")])
def test_a_bad_questions_file_is_one_message(tmp_path, text, expected):
    (tmp_path / "questions.json").write_text(text)
    with pytest.raises(InboxError) as info:
        read_inbox(tmp_path, "questions.json")
    assert expected in str(info.value) and "questions.json" in str(info.value)
    assert "Question_id, video_id and question" in str(info.value), "the message says what the file must be"


def test_predictions_params():
    params = parse_params({})
    assert (params.predictions.inbox, params.predictions.questions_file, params.predictions.model) == (
        "inbox", "questions.json", "champion")  # fmt: skip
    assert parse_params({"predictions": {"model": "3"}}).predictions.model == "3"
    with pytest.raises(ValueError, match=r"predictions\.model"):
        parse_params({"predictions": {"model": "models:/x@champion"}})
    with pytest.raises(ValueError, match=r"predictions\.questions_file"):
        parse_params({"predictions": {"questions_file": "../q.json"}})
