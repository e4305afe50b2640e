"""Profiles: small files of changes to the committed demo params, applied in place with comments kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from embodied_r.cli import main
from embodied_r.config import ParamsError, load_params
from embodied_r.profiles import apply_profile, available_profiles, compose_profiles, deep_merge, profile_params
from embodied_r.vocabulary import TASK_CATEGORIES
from tests.conftest import PROJECT_ROOT

PROFILES = sorted(p.stem for p in (PROJECT_ROOT / "profiles").glob("*.yaml"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(PROJECT_ROOT / "profiles", tmp_path / "profiles")
    return tmp_path


def test_the_four_profiles_exist_and_params_yaml_is_the_demo():
    assert set(available_profiles(PROJECT_ROOT)) == {"demo", "tiny", "cpu-long", "paper"}
    assert yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["profile"] == "demo"


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_is_valid_and_names_itself(name):
    params = profile_params(PROJECT_ROOT, name)
    assert params.profile == name


def test_paper_profile_is_the_papers_recipe():
    p = profile_params(PROJECT_ROOT, "paper")
    assert p.lm.base == "Qwen/Qwen2.5-3B-Instruct" and p.perception.model == "Qwen/Qwen2.5-VL-72B-Instruct"
    g = p.grpo
    assert (g.learning_rate, g.warmup_ratio, g.num_generations, g.beta, g.temperature) == (5e-7, 0.05, 8, 0.001, 1.0)
    assert (g.prompts_per_step, g.max_completion_length, g.epochs, g.max_steps) == (4, 2048, 12, None)
    assert g.nproc_per_node == 8 and g.launcher == "accelerate" and not g.think_prefill and g.dynamic_sampling == 0
    assert not p.cold_start.enabled and not p.sft.enabled
    assert [s.weights for s in p.rewards.schedule.stages] == [(7, 3, 0), (3, 7, 0), (1, 7, 2)]
    assert p.rewards.accuracy_mode == "answer_tag" and p.sft.answer == "letter" and p.evaluation.judge_consistency
    assert set(p.data.categories) == set(p.training_set.categories) == set(TASK_CATEGORIES)  # the paper's eight
    # both benchmarks in one run, as the paper trains and tests
    assert p.data.source is None and [s.kind for s in p.data.source_list()] == ["urbanvideo", "vsibench"]
    assert p.data.sources[0].annotations.endswith("MCQ.parquet") and p.perception.backend == "openai"
    assert p.split.ratios == (0.75, 0.05, 0.20)


def test_cpu_profiles_turn_the_cold_start_on():
    for name in ("demo", "tiny", "cpu-long"):
        assert profile_params(PROJECT_ROOT, name).cold_start.enabled, name


@pytest.mark.parametrize("name", ["demo", "cpu-long"])
def test_the_cpu_recipe_two_tasks_text_answers_redraws_no_consistency_stage_nor_reference_model(name):
    p = profile_params(PROJECT_ROOT, name)
    tasks = {"action_generation", "obj_appearance_order"}  # the two a 135M LM gains on (README, Results)
    assert set(p.synthetic.categories) == set(p.data.categories) == set(p.training_set.categories) == tasks
    assert (p.cold_start.answer, p.cold_start.letters, p.sft.answer, p.rewards.accuracy_mode) == (
        "option_text", "every_option", "option_text", "answer_text",
    )  # fmt: skip
    assert [s.weights for s in p.rewards.schedule.stages] == [(7, 3, 0), (3, 7, 0)]
    assert (p.grpo.beta, p.grpo.dynamic_sampling, p.evaluation.judge_consistency) == (0.0, 2, False)


def test_cpu_long_is_the_demo_recipe_larger_and_longer_with_the_sft_baseline_and_the_noise_study():
    demo, long = profile_params(PROJECT_ROOT, "demo"), profile_params(PROJECT_ROOT, "cpu-long")
    assert long.synthetic.scenes == 3 * demo.synthetic.scenes and long.grpo.max_steps == 2 * demo.grpo.max_steps
    assert long.sft.enabled and not demo.sft.enabled
    assert set(long.evaluation.noise_study) == {"perfect", "high"} and set(demo.evaluation.noise_study) == {"perfect"}
    assert long.grpo.learning_rate == demo.grpo.learning_rate and long.cold_start == demo.cold_start


def test_ci_runs_the_paths_the_demo_turns_off():
    tiny = profile_params(PROJECT_ROOT, "tiny")
    eight = set(TASK_CATEGORIES)
    assert set(tiny.data.categories) == set(tiny.training_set.categories) == set(tiny.synthetic.categories) == eight
    assert [s.weights for s in tiny.rewards.schedule.stages] == [(7, 3, 0), (3, 7, 0), (1, 7, 2)]
    assert tiny.grpo.beta > 0 and tiny.evaluation.judge_consistency and tiny.sft.enabled


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}}
    assert deep_merge(base, {"a": {"c": [3]}, "d": {}}) == {"a": {"b": 1, "c": [3]}, "d": {}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}}, "the input is not modified"


def test_apply_keeps_comments_and_untouched_keys_and_refuses_stacking(project):
    before = (project / "params.yaml").read_text()
    params = apply_profile(project, "tiny")
    after = (project / "params.yaml").read_text()
    assert params.profile == "tiny" and params.lm.base == "random:tiny-llama"
    assert "# embodied-r — the single source of configuration" in after, "comments survive"
    data = yaml.safe_load(after)
    assert data["synthetic"]["scenes"] == 3 and data["keyframes"] == yaml.safe_load(before)["keyframes"]
    assert "objects_per_scene: [4, 5]" in after, "lists stay on one line"
    with pytest.raises(ParamsError, match=r"compose them in one command .*`embodied-r profile tiny cpu-long`"):
        apply_profile(project, "cpu-long")
    assert apply_profile(project, "tiny").profile == "tiny", "re-applying the same profile is fine"
    stacked = apply_profile(project, "cpu-long", force=True)
    assert stacked.profile == "tiny+cpu-long", "the profile key names both, not only the last one"
    assert (stacked.synthetic.seed, stacked.synthetic.scenes) == (7, 60)


def test_an_invalid_profile_never_touches_params_yaml(project):
    (project / "profiles" / "broken.yaml").write_text("# broken\ngrpo:\n  learning_rate: -1\n")
    before = (project / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=r"grpo\.learning_rate"):
        apply_profile(project, "broken")
    assert (project / "params.yaml").read_text() == before
    with pytest.raises(ParamsError, match="unknown profile 'nope'; available: demo"):
        apply_profile(project, "nope")


def test_cli_lists_and_applies(project, capsys):
    assert main(["--root", str(project), "profile"]) == 0
    listing = capsys.readouterr().out
    assert "cpu-long" in listing and "paper" in listing
    assert main(["--root", str(project), "profile", "paper"]) == 0
    applied = yaml.safe_load((project / "params.yaml").read_text())
    assert applied["lm"]["base"] == "Qwen/Qwen2.5-3B-Instruct"
    assert applied["data"]["source"] is None and [s["kind"] for s in applied["data"]["sources"]] == [
        "urbanvideo", "vsibench",
    ]  # fmt: skip
    assert load_params(project / "params.yaml").data.label == "urbanvideo+vsibench", "the written file is valid"
    assert "\n  - kind: urbanvideo\n" in (project / "params.yaml").read_text(), "one source a block, not one long line"
    assert main(["--root", str(project), "profile", "tiny"]) == 2, "stacking is refused with exit code 2"


def test_profiles_compose_in_order_the_later_one_winning_and_each_change_is_reported(project):
    (project / "profiles" / "fewer.yaml").write_text("# fewer\nsynthetic:\n  questions_per_video: 4\n  scenes: 5\n")
    before = (project / "params.yaml").read_text()
    composed = compose_profiles(project, ["tiny", "fewer"])
    p = composed.params
    assert (composed.names, composed.name, p.profile) == (("tiny", "fewer"), "tiny+fewer", "tiny+fewer")
    assert p.lm.base == "random:tiny-llama" and p.synthetic.seed == 7, "the first profile's own keys"
    assert (p.synthetic.questions_per_video, p.synthetic.scenes) == (4, 5), "the later one wins on a shared key"
    assert compose_profiles(project, ["fewer", "tiny"]).params.synthetic.scenes == 3, "order matters"
    assert compose_profiles(project, ["tiny,fewer"]).params == p, "a,b is a and b"
    report = composed.describe()
    assert (
        "  tiny: synthetic.scenes: 20 -> 3\n" in report
        and "  fewer: synthetic.scenes: 3 -> 5 (overrides tiny)" in report
    )
    assert "  fewer: synthetic.questions_per_video: 8 -> 4\n" not in report + "\n", "tiny does not set it"
    assert "fewer: synthetic.questions_per_video: 8 -> 4" in report
    assert (project / "params.yaml").read_text() == before, "composing writes nothing"


def test_cli_profile_writes_several_composed_with_comments_kept(project, capsys):
    (project / "profiles" / "fewer.yaml").write_text("# fewer\nsynthetic:\n  questions_per_video: 4\n")
    assert main(["--root", str(project), "profile", "tiny", "fewer"]) == 0
    out = capsys.readouterr().out
    assert "profile 'tiny+fewer'" in out and "fewer: synthetic.questions_per_video: 8 -> 4" in out
    written = load_params(project / "params.yaml")
    assert (written.profile, written.synthetic.seed, written.synthetic.questions_per_video) == ("tiny+fewer", 7, 4)
    assert "# embodied-r — the single source of configuration" in (project / "params.yaml").read_text()
    assert main(["--root", str(project), "profile", "tiny,fewer"]) == 0, "the same composition again is fine"


def test_cli_profile_out_writes_a_copy_and_leaves_params_yaml(project, capsys):
    before = (project / "params.yaml").read_text()
    out = project / "elsewhere" / "cpu-long.yaml"
    out.parent.mkdir()
    assert main(["--root", str(project), "profile", "cpu-long", "--out", str(out)]) == 0
    assert (project / "params.yaml").read_text() == before
    written = load_params(out)
    assert (written.profile, written.grpo.max_steps) == ("cpu-long", 160)
    assert "# embodied-r — the single source of configuration" in out.read_text(), "comments kept"
