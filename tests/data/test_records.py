import pytest

from embodied_r.data.records import (
    QuestionRecord,
    append_jsonl,
    compose_question,
    parse_choices,
    read_records,
    write_jsonl,
)


def test_compose_and_parse_choices_round_trip():
    choices = {"A": "the red chair", "B": "the blue lamp", "C": "the green box"}
    text = compose_question("Question: Which object is closest to the sofa?", choices)
    assert text.endswith("C. the green box")
    assert parse_choices(text) == choices


def test_parse_choices_ignores_stray_letters_in_the_stem():
    text = "Question: Is B. Smith's chair ahead?\nA. yes\nB. no"
    assert parse_choices(text) == {"A": "yes", "B": "no"}


def test_record_rejects_answer_not_among_choices():
    with pytest.raises(ValueError, match="answer 'E' is not among the choices"):
        QuestionRecord(
            question_id="q1",
            video_id="v",
            category="c",
            question="q\nA. a\nB. b",
            answer="E",
            scene_name="s",
            data_source="t",
            choices={"A": "a", "B": "b"},
        )


def test_numeric_record_needs_a_number():
    ok = QuestionRecord(
        question_id="q", video_id="v", category="object_counting", question="How many?", answer="3",
        scene_name="s", data_source="vsibench", kind="numeric",
    )  # fmt: skip
    assert ok.choices == {}
    with pytest.raises(ValueError, match="non-numeric"):
        ok.model_validate({**ok.model_dump(), "answer": "three"})


def test_jsonl_is_byte_deterministic(tmp_path):
    record = QuestionRecord(
        question_id="q1", video_id="v", category="c", question="q\nA. a\nB. b", answer="B",
        scene_name="s", data_source="t", choices={"B": "b", "A": "a"},
    )  # fmt: skip
    write_jsonl(tmp_path / "a.jsonl", [record])
    write_jsonl(tmp_path / "b.jsonl", [QuestionRecord.model_validate(record.model_dump())])
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert read_records(tmp_path / "a.jsonl") == [record]
    assert record.to_official()["Question_id"] == "q1"


def test_append_jsonl_adds_a_line_and_writes_what_write_jsonl_writes(tmp_path):
    rows = [{"b": 1, "a": "é"}, {"run": 2}]
    log = tmp_path / "out" / "log.jsonl"  # the folder is created
    for row in rows:
        append_jsonl(log, row)
    write_jsonl(tmp_path / "whole.jsonl", rows)
    assert log.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert log.read_text(encoding="utf-8").splitlines()[0] == '{"a":"é","b":1}'


def test_write_jsonl_is_atomic_a_failure_midway_keeps_the_old_file_and_no_part_file(tmp_path):
    from embodied_r.data.records import write_jsonl

    path = tmp_path / "rows.jsonl"
    assert write_jsonl(path, [{"a": 1}, {"a": 2}]) == 2
    before = path.read_bytes()

    def rows():
        yield {"a": 3}
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
