"""The learning experiments: `experiments/learning.py`'s run summary, `experiments/learnability.py`'s curve and
`experiments/rollouts.py`'s rollout groups."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from experiments.learning import LogHistory, by_quarter

ROOT = Path(__file__).resolve().parents[2]


def test_by_quarter_averages_each_quarter_and_skips_missing_values() -> None:
    entries = [{"reward": 1.0, "acc": float(step), "entropy": None if step < 6 else 0.5} for step in range(8)]
    summary = by_quarter(entries, ("acc", "entropy"))
    assert summary["acc"] == [0.5, 2.5, 4.5, 6.5]
    assert summary["entropy"] == [None, None, None, 0.5]


def test_by_quarter_of_a_short_run_leaves_empty_quarters_none() -> None:
    assert by_quarter([{"acc": 1.0}, {"acc": 0.0}], ("acc",)) == {"acc": [None, 1.0, None, 0.0]}


def test_log_history_keeps_only_training_logs() -> None:
    history = LogHistory()
    history.on_log(None, None, None, logs={"reward": 0.5, "rewards/accuracy/mean": 0.25})
    history.on_log(None, None, None, logs={"train_runtime": 12.0})  # the end-of-run summary
    history.on_log(None, None, None, logs=None)
    assert history.entries == [{"reward": 0.5, "rewards/accuracy/mean": 0.25}]


@pytest.fixture
def learnability_run(tmp_path, monkeypatch):
    """Runs ``experiments/learnability.py`` on a tiny model and rows with extra arguments; returns the records."""
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from experiments import learnability

    data = tmp_path / "training_set"
    data.mkdir()
    write_tiny_rows(data / "train.jsonl", n=6)
    write_tiny_rows(data / "test.jsonl", n=4, split="test")
    model = build_tiny_lm(tmp_path / "lm")
    out = tmp_path / "learnability.jsonl"

    def run(*extra: str) -> list[dict]:
        argv = ["learnability", "--model", str(model), "--data", str(data), "--batch", "3", "--eval-every", "4",
                "--out", str(out), *extra]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        assert learnability.main() == 0
        return [json.loads(line) for line in out.read_text().splitlines()]

    return run


def test_learnability_writes_a_curve_for_each_prompt_gradient(learnability_run) -> None:
    for grad in ("all", "none"):
        records = learnability_run("--examples", "8", "--prompt-grad", grad, "--lr", "1e-2")
    assert [r["args"]["prompt_grad"] for r in records] == ["all", "none"]
    for record in records:
        assert record["stopped"] is False
        assert record["shared_tokens"] >= 16  # the tiny rows share their system prompt and more
        curve = record["curve"]
        assert [point["examples"] for point in curve] == [0, 6, 8]  # batches of 3, evaluated after 4 and at the end
        assert all(0.0 <= point["pooled"] <= 1.0 for point in curve)
        assert all(point["loss"] > 0 and point["s_per_example"] > 0 for point in curve[1:])
    # lr 1e-2 moves a tiny model: the training loss changes between the two evaluations
    assert records[0]["curve"][1]["loss"] != records[0]["curve"][2]["loss"]


def test_learnability_fits_a_few_training_questions_and_scores_them(learnability_run) -> None:
    """``--train-limit N --score-train``: the sanity check that the benchmark fits what it is shown, scored apart
    from the test split (the tiny LM can fit one question; its prompts differ too little for it to tell more apart).
    """
    (record,) = learnability_run("--train-limit", "1", "--score-train", "--examples", "30", "--eval-every", "10",
                                 "--lr", "3e-2", "--precision", "fp32")  # fmt: skip
    assert record["train"] == 1
    curve = record["curve"]
    assert [point["examples"] for point in curve] == [0, 10, 20, 30]
    assert curve[-1]["train_accuracy"] == 1.0, "one question seen 30 times is fitted"
    assert curve[-1]["loss"] < 0.1
    assert curve[-1]["pooled"] == 0.25, "the test questions (A, B, C, D) get that one letter: one in four"


def test_learnability_answer_text_fits_an_options_text_and_scores_by_it(learnability_run, tmp_path) -> None:
    """``--answer text``: the loss is on the correct option's text and a question is scored by the option whose
    text is likeliest. Rows with the options on lines (as the pipeline writes them); one fitted question's text
    picks that option's letter on the four test questions (answers A, B, C, D): one in four."""
    from embodied_r.training.dataset import read_training_rows

    for name in ("train", "test"):
        path = tmp_path / "training_set" / f"{name}.jsonl"
        rows = read_training_rows(path)
        lined = [r.model_copy(update={"question": "Which is closer?\nA. chair\nB. table\nC. door\nD. lamp"})
                 for r in rows]  # fmt: skip
        path.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in lined))
    (record,) = learnability_run("--answer", "text", "--think", "answer", "--train-limit", "1", "--score-train",
                                 "--examples", "30", "--eval-every", "10", "--lr", "3e-2",
                                 "--precision", "fp32")  # fmt: skip
    curve = record["curve"]
    assert record["args"]["answer"] == "text" and [p["examples"] for p in curve] == [0, 10, 20, 30]
    assert curve[-1]["train_accuracy"] == 1.0 and curve[-1]["loss"] < 0.1
    assert curve[-1]["pooled"] == 0.25


def test_frame_notes_copy_the_named_objects_and_never_an_option() -> None:
    from experiments.learnability import frame_notes

    content = (
        "Frame 0: Observe: I see a red box (box-shaped) ahead, about 2.0 m away. None of the objects named in the "
        "question are visible.\nFrame 1: After rotate left, Observe: Newly visible: a tall lamp (cylinder-shaped) "
        "to the left, about 1.5 m away. Objects named in the question: a tall lamp (cylinder-shaped) to the left, "
        "about 1.5 m away; a red box (box-shaped) behind, about 2.0 m away.\nQuestion: Where?\nA. ahead\nB. behind"
    )
    assert frame_notes(content) == "Frame 0: none. Frame 1: rotate left; tall lamp to the left, red box behind."
    assert frame_notes("A description in a VLM's own words.") == ""


def test_learnability_stopped_early_keeps_its_curve(learnability_run, monkeypatch) -> None:
    """Ctrl-C (or `kill`) in the middle of a run writes the points measured so far, marked as stopped."""
    steps = []
    real_step = torch.optim.AdamW.step

    def step_then_stop(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 3:  # the third optimizer step: after the evaluation at 6 examples
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_stop)
    (record,) = learnability_run("--examples", "30")
    assert record["stopped"] is True
    assert [point["examples"] for point in record["curve"]] == [0, 6]


def test_letter_probe_separates_a_letter_bias_from_knowing_the_answer(tmp_path) -> None:
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from embodied_r.training.dataset import read_training_rows
    from experiments.letters import letter_distributions, summarise

    rows = read_training_rows(write_tiny_rows(tmp_path / "test.jsonl", n=8, split="test"))  # answers A B C D A …
    bias = [{"A": 0.7, "B": 0.1, "C": 0.1, "D": 0.1}] * 8  # the same leaning on every question
    stats = summarise(rows, bias)
    assert stats["favourite"] == {"A": 8, "B": 0, "C": 0, "D": 0} and stats["accuracy"] == 0.25
    assert stats["content_gain"] == pytest.approx(0.0, abs=1e-4)
    # noise that knows nothing: over 16 questions each favourite meets each answer once (independent of it)
    sixteen = read_training_rows(write_tiny_rows(tmp_path / "sixteen.jsonl", n=16, split="test"))
    noisy = [{c: (0.7 if c == "ABCD"[i // 4] else 0.1) for c in "ABCD"} for i in range(16)]
    assert summarise(sixteen, noisy)["content_gain"] == pytest.approx(0.0, abs=1e-4)
    assert summarise(sixteen, noisy)["accuracy"] == 0.25
    low, high = summarise(sixteen, noisy)["content_gain_ci95"]
    assert low < 0 < high
    knows = [{c: (0.4 if c == row.solution else 0.2) for c in "ABCD"} for row in rows]  # a little, everywhere
    assert summarise(rows, knows)["content_gain"] > 0.4 and summarise(rows, knows)["accuracy"] == 1.0
    assert summarise(rows, knows)["content_gain_ci95"][0] > 0
    wrong = [{c: (0.1 if c == row.solution else 0.3) for c in "ABCD"} for row in rows]
    assert summarise(rows, wrong)["content_gain"] < 0

    dists = letter_distributions(str(build_tiny_lm(tmp_path / "lm")), rows, batch_size=3)
    assert len(dists) == 8
    for d in dists:
        assert set(d) == set("ABCD") and sum(d.values()) == pytest.approx(1.0, abs=1e-5)
    assert summarise(rows, dists)["entropy"] <= math.log(4) + 1e-6


def test_rollout_group_stats_count_only_groups_with_differing_rewards_as_signal() -> None:
    from experiments.rollouts import group_stats

    answers = [["A", "A", "A", "A"], ["A", "B", None, "B"], ["C", "C", "C", "C"]]
    stats = group_stats(answers, ["A", "B", "D"])
    assert stats["signal"] == pytest.approx(1 / 3)  # the first is all right, the last all wrong: no gradient
    assert stats["accuracy"] == pytest.approx(6 / 12)
    assert stats["pass_at_g"] == pytest.approx(2 / 3)
    assert stats["distinct"] == pytest.approx((1 + 3 + 1) / 3)
    assert stats["format"] == pytest.approx(11 / 12)


def test_rollouts_sample_groups_of_a_real_model_and_append_a_record_per_temperature(tmp_path, monkeypatch) -> None:
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from experiments import rollouts

    write_tiny_rows(tmp_path / "train.jsonl", n=3)
    model = build_tiny_lm(tmp_path / "lm")
    out = tmp_path / "rollouts.jsonl"
    argv = ["rollouts", str(model), "--rows", str(tmp_path / "train.jsonl"), "--prompts", "2", "--generations", "3",
            "--max-new-tokens", "4", "--temperatures", "0.7,1.5", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert rollouts.main() == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["temperature"] for r in records] == [0.7, 1.5]
    for r in records:
        assert (r["prompts"], r["generations"], r["max_new_tokens"]) == (2, 3, 4)
        assert 0.0 <= r["signal"] <= r["pass_at_g"] <= 1.0
        assert 1.0 <= r["distinct"] <= 3.0  # a None answer counts as one of the distinct answers


def test_rollouts_reject_a_folder_that_is_no_model(tmp_path, monkeypatch) -> None:
    from embodied_r.models.tiny import write_tiny_rows
    from experiments import rollouts

    write_tiny_rows(tmp_path / "train.jsonl", n=2)
    monkeypatch.setattr(sys, "argv", ["rollouts", str(tmp_path), "--rows", str(tmp_path / "train.jsonl")])
    with pytest.raises(SystemExit, match="not a model folder"):
        rollouts.main()


def _result(correct: list[bool], categories: list[str]):
    """An :class:`EvalResult` of questions q0, q1, … answered right where ``correct`` says (solution B)."""
    from embodied_r.evaluation.generate import EvalResult
    from embodied_r.evaluation.metrics import aggregate, score_sample
    from tests.evaluation.helpers import make_row

    samples = [
        score_sample("<think>t</think><answer>" + ("B" if ok else "A") + "</answer>", make_row(f"q{i}", category=c))
        for i, (ok, c) in enumerate(zip(correct, categories, strict=True))
    ]
    return EvalResult(aggregate=aggregate(samples, bootstrap_samples=200), per_sample=samples, settings={})


def test_compare_pairs_the_gain_and_splits_trained_from_held_out_tasks() -> None:
    from experiments.learning import compare

    categories = ["seen"] * 4 + ["unseen"] * 4
    before = _result([False] * 8, categories)
    after = _result([True] * 4 + [False] * 4, categories)
    result = compare(before, after, {"seen"}, n=200)
    assert result["gain"] == 0.5
    lo, hi = result["gain_ci95"]
    assert 0.0 < lo <= 0.5 <= hi <= 1.0
    seen, unseen = result["subsets"]["trained"], result["subsets"]["held_out"]
    assert (seen["n"], seen["before"], seen["after"], seen["after_ci95"]) == (4, 0.0, 1.0, [1.0, 1.0])
    assert (unseen["n"], unseen["before"], unseen["after"]) == (4, 0.0, 0.0)
    assert (seen["gain"], seen["gain_ci95"], unseen["gain"]) == (1.0, [1.0, 1.0], 0.0)
    # every test task trained: no held-out subset; no trained tasks given: no subsets at all
    assert set(compare(before, after, {"seen", "unseen"}, n=200)["subsets"]) == {"trained"}
    assert "subsets" not in compare(before, after, set(), n=200)


@pytest.mark.slow
def test_learning_runs_a_recipe_and_reuses_the_warm_start_and_its_score(tmp_path, monkeypatch, capsys) -> None:
    """``experiments/learning.py`` end to end on a tiny model: cold start, GRPO, both scored, the paired gain and
    the trained / held-out subsets in the record; a second recipe reuses the cold start and reads its completions
    back."""
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from embodied_r.training.dataset import read_training_rows
    from experiments import learning

    data = tmp_path / "data"
    (data / "training_set").mkdir(parents=True)
    (data / "models").mkdir()
    for name, n in (("train", 8), ("test", 6)):
        path = data / "training_set" / f"{name}.jsonl"
        rows = read_training_rows(write_tiny_rows(path, n=n, split=name))
        rows = [r.model_copy(update={"category": "seen" if i % 2 else "unseen"}) for i, r in enumerate(rows)]
        path.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in rows))
    (data / "models" / "base_lm.json").write_text(json.dumps({"path": str(build_tiny_lm(tmp_path / "lm"))}))
    monkeypatch.setattr(learning, "ROOT", tmp_path)  # .cache/learning and experiments/out under tmp_path
    # letter answers: these rows have no option texts
    tiny = {"cold_start.examples": 8, "cold_start.max_steps": 2, "grpo.num_generations": 2, "grpo.max_steps": 2,
            "grpo.max_completion_length": 8, "grpo.save_steps": 1, "evaluation.max_new_tokens": 8,
            "evaluation.bootstrap_samples": 200, "cold_start.answer": "letter",
            "rewards.accuracy_mode": "answer_tag"}  # fmt: skip
    sets = [arg for key, value in tiny.items() for arg in ("-S", f"{key}={value}")]

    def run(tag: str) -> dict:
        argv = ["learning", "--params", str(ROOT / "params.yaml"), "--data", str(data), "--tag", tag,
                "--train-categories", "seen", *sets]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        assert learning.main() == 0
        return [json.loads(line) for line in (tmp_path / "experiments" / "out" / "learning.jsonl").open()][-1]

    first = run("one")
    assert (first["train_rows"], first["test_rows"]) == (4, 6)  # trained on the "seen" half of the training split
    assert first["gain"] == pytest.approx(first["grpo"]["pooled"] - first["warm"]["pooled"])
    lo, hi = first["gain_ci95"]
    assert lo <= first["gain"] <= hi
    assert first["trained_subset"]["n"] == first["held_out_subset"]["n"] == 3
    assert len(first["grpo_by_quarter"]["rewards/accuracy/mean"]) == 4
    assert first["warm"]["reused_rows"] == first["grpo"]["reused_rows"] == 0
    second = run("two")
    assert second["warm"]["reused_rows"] == 6, "the shared warm start's completions are read back, not generated"
    assert "read back" in capsys.readouterr().out
    same = {k: v for k, v in first["warm"].items() if k not in ("seconds", "reused_rows")}
    assert {k: v for k, v in second["warm"].items() if k not in ("seconds", "reused_rows")} == same
    assert second["grpo"]["reused_rows"] == 0, "another GRPO run is another model"
    kept = sorted((tmp_path / ".cache" / "evaluation").glob("*.jsonl"))
    assert len(kept) == 3, "completions kept as generated: the warm start's once, each GRPO run's"


def test_paired_scores_two_models_on_the_same_questions_and_appends_a_record(tmp_path) -> None:
    from embodied_r.models.tiny import build_tiny_lm, write_tiny_rows
    from embodied_r.training.dataset import read_training_rows
    from experiments import paired

    (tmp_path / "data" / "training_set").mkdir(parents=True)
    rows = write_tiny_rows(tmp_path / "data" / "training_set" / "test.jsonl", n=4, split="test")
    model = build_tiny_lm(tmp_path / "lm")
    out = tmp_path / "paired.jsonl"
    argv = [str(model), str(model), "--data", str(tmp_path / "data"), "-S", "evaluation.max_new_tokens=4",
            "--train-categories", read_training_rows(rows)[0].category, "--out", str(out),
            "--keep-dir", str(tmp_path / "kept")]  # fmt: skip
    assert paired.main(argv) == 0
    assert len(list((tmp_path / "kept").glob("*.jsonl"))) == 1, "the same model twice: one pass kept, read back"
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    # the same greedy model twice: no gain, an interval of zero width, every question in the trained subset
    assert (record["gain"], record["gain_ci95"]) == (0.0, [0.0, 0.0])
    assert record["before_pooled"] == record["after_pooled"]
    assert record["subsets"]["trained"]["n"] + record["subsets"].get("held_out", {"n": 0})["n"] == 4
    with pytest.raises(SystemExit, match="not among the test questions' tasks"):
        paired.main([str(model), str(model), "--data", str(tmp_path / "data"), "--train-categories", "nope"])
    with pytest.raises(SystemExit, match="not a model folder"):
        paired.main([str(tmp_path), str(model)])
