"""Profiles: small files of changes to the committed demo params, applied in place with comments kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from embodied_r.cli import main
from embodied_r.config import ParamsError
from embodied_r.profiles import apply_profile, available_profiles, deep_merge, profile_params
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
    assert g.nproc_per_node == 8 and g.launcher == "accelerate" and not g.think_prefill
    assert not p.cold_start.enabled and not p.sft.enabled
    assert [s.weights for s in p.rewards.schedule.stages] == [(7, 3, 0), (3, 7, 0), (1, 7, 2)]


def test_cpu_profiles_turn_the_cold_start_on():
    for name in ("demo", "tiny", "cpu-long"):
        assert profile_params(PROJECT_ROOT, name).cold_start.enabled, name


def test_cpu_long_drops_the_consistency_stage_and_the_reference_model_but_the_demo_keeps_them():
    demo, long = profile_params(PROJECT_ROOT, "demo"), profile_params(PROJECT_ROOT, "cpu-long")
    assert [s.weights for s in demo.rewards.schedule.stages] == [(7, 3, 0), (3, 7, 0), (1, 7, 2)]
    assert [s.weights for s in long.rewards.schedule.stages] == [(7, 3, 0), (3, 7, 0)]
    assert (demo.grpo.beta, long.grpo.beta) == (0.001, 0.0)
    assert demo.evaluation.judge_consistency and not long.evaluation.judge_consistency


def test_cpu_long_answers_by_option_text_and_the_paper_by_letter():
    long, paper = profile_params(PROJECT_ROOT, "cpu-long"), profile_params(PROJECT_ROOT, "paper")
    assert (long.cold_start.answer, long.sft.answer, long.rewards.accuracy_mode) == (
        "option_text", "option_text", "answer_text",
    )  # fmt: skip
    assert paper.rewards.accuracy_mode == "answer_tag" and paper.sft.answer == "letter"


def test_cpu_long_trains_every_task_it_tests_and_redraws_flat_groups_but_the_demo_keeps_the_papers_sampling():
    long, demo = profile_params(PROJECT_ROOT, "cpu-long"), profile_params(PROJECT_ROOT, "demo")
    tasks = {"action_generation", "obj_appearance_order"}  # the two a 135M LM gains on (README, Results)
    assert set(long.synthetic.categories) == set(long.data.categories) == set(long.training_set.categories) == tasks
    assert (long.grpo.dynamic_sampling, long.grpo.max_steps) == (2, 160)
    assert demo.grpo.dynamic_sampling == 0, "the paper's setting (off) stays the default"


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
    with pytest.raises(ParamsError, match=r"git checkout params\.yaml"):
        apply_profile(project, "cpu-long")
    assert apply_profile(project, "tiny").profile == "tiny", "re-applying the same profile is fine"
    assert apply_profile(project, "cpu-long", force=True).profile == "cpu-long"


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
    assert yaml.safe_load((project / "params.yaml").read_text())["lm"]["base"] == "Qwen/Qwen2.5-3B-Instruct"
    assert main(["--root", str(project), "profile", "tiny"]) == 2, "stacking is refused with exit code 2"
