from pathlib import Path

import pytest
import yaml

from embodied_r.config import KeyframesConfig, Params, ParamsError, load_params, parse_params
from embodied_r.vocabulary import TASK_CATEGORIES
from tests.conftest import PROJECT_ROOT


def test_project_params_file_is_valid():
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.keyframes == KeyframesConfig(), "keyframe defaults must be the paper's values"


def test_defaults_are_the_papers_values():
    kf = KeyframesConfig()
    assert (kf.orb_features, kf.min_matches, kf.ransac_reproj_threshold) == (500, 10, 5.0)
    assert (kf.overlap_threshold, kf.min_frames, kf.max_frames) == (0.5, 4, 32)
    assert Params().split.ratios == (0.75, 0.05, 0.20)


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ParamsError) as err:
        parse_params({"keyframes": {"overlap_treshold": 0.4}}, "params.yaml")
    msg = str(err.value)
    assert "keyframes.overlap_treshold" in msg
    assert "overlap_threshold" in msg and "allowed keys" in msg


def test_unknown_top_level_section():
    with pytest.raises(ParamsError, match=r"synthetik: unknown key; allowed keys here: .*synthetic"):
        parse_params({"synthetik": {}})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ParamsError, match=r"synthetic\.scenes: .*integer.*'many'"):
        parse_params({"synthetic": {"scenes": "many"}})


def test_out_of_range_value():
    with pytest.raises(ParamsError, match=r"keyframes\.overlap_threshold: .*less than 1"):
        parse_params({"keyframes": {"overlap_threshold": 1.5}})


def test_literal_lists_allowed_values():
    with pytest.raises(ParamsError, match=r"data\.source: .*'embedded', 'official', 'urbanvideo' or 'vsibench'"):
        parse_params({"data": {"source": "youtube"}})


def test_cross_field_checks():
    with pytest.raises(ParamsError, match="min_frames"):
        parse_params({"keyframes": {"min_frames": 40}})
    with pytest.raises(ParamsError, match="sum"):
        parse_params({"split": {"ratios": [0.5, 0.5, 0.5]}})
    with pytest.raises(ParamsError, match=r"needs data\.annotations"):
        parse_params({"data": {"source": "vsibench"}})
    with pytest.raises(ParamsError, match=r"synthetic\.categories: unknown task categories 'telepathy'"):
        parse_params({"synthetic": {"categories": ["telepathy"]}})
    several = {"dynamic_sampling": 2, "launcher": "torchrun", "nproc_per_node": 2}
    with pytest.raises(ParamsError, match=r"grpo: .*set grpo\.dynamic_sampling: 0, or nproc_per_node: 1"):
        parse_params({"grpo": several})
    assert parse_params({"grpo": {**several, "dynamic_sampling": 0}}).grpo.nproc_per_node == 2
    assert parse_params({"grpo": {**several, "nproc_per_node": 1}}).grpo.dynamic_sampling == 2


def test_load_params_errors_name_the_file(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError, match=r"nope\.yaml: no such params file"):
        load_params(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("synthetic: [unclosed")
    with pytest.raises(ParamsError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3")
    with pytest.raises(ParamsError, match=r"scalar\.yaml: top level must be a mapping"):
        load_params(scalar)


def test_overrides_use_dotted_keys(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"synthetic": {"scenes": 3}}))
    params = load_params(path, overrides={"synthetic.scenes": 5, "split.seed": 9})
    assert params.synthetic.scenes == 5 and params.split.seed == 9


# --------------------------------------------------------------------------- what validates but cannot run

REAL = {"annotations": "MCQ.parquet", "videos_dir": "videos"}
VLM = {"backend": "openai", "model": "Qwen/Qwen2.5-VL-72B-Instruct"}
URBAN = ["landmark_position", "counterfactual", "progress_evaluation", "action_generation"]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_misspelt_data_category_is_refused_naming_key_value_suggestion_and_valid_names(tmp_path: Path):
    # Before: accepted; ingest then kept 0 questions of it (of all, when it was the only one).
    path = _write(tmp_path, {"data": {"categories": ["action_generation", "landmark_postion"]}})
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert "params.yaml" in msg and "data.categories: unknown task categories 'landmark_postion'" in msg
    assert "did you mean 'landmark_position'?" in msg
    assert "valid for data.source 'embedded'" in msg and "route_planning" in msg, "the valid names are listed"
    assert "Traceback" not in msg and msg.count("\n") == 1, "one line per error"


def test_the_official_spelling_of_a_category_suggests_the_projects_name():
    with pytest.raises(ParamsError, match=r"'Landmark Position' \(did you mean 'landmark_position'\?\)"):
        parse_params({"data": {"categories": ["Landmark Position"]}})


def test_categories_are_checked_against_the_chosen_source():
    urban = {"source": "urbanvideo", **REAL, "categories": URBAN}
    assert parse_params({"data": urban, "perception": VLM, "training_set": {"categories": URBAN}}).data.kinds == (
        "urbanvideo",
    )
    with pytest.raises(ParamsError, match=r"data\.categories: task categories 'route_planning' \(a VSI-Bench "
                       r"category\) are not in data\.source 'urbanvideo' \(UrbanVideo-Bench\); valid for it: "
                       r"landmark_position, counterfactual, progress_evaluation, action_generation"):  # fmt: skip
        parse_params({"data": {**urban, "categories": [*URBAN, "route_planning"]}, "perception": VLM})
    # the numeric VSI tasks are VSI-Bench's
    vsi = {"source": "vsibench", **REAL, "categories": ["route_planning", "object_counting"]}
    assert parse_params({"data": vsi, "perception": VLM, "training_set": {"categories": ["route_planning"]}})
    with pytest.raises(ParamsError, match=r"data\.categories: .*'object_countng' \(did you mean 'object_counting'"):
        parse_params({"data": {**vsi, "categories": ["object_countng"]}, "perception": VLM})


def test_training_set_categories_are_checked_against_the_source_and_the_ingested_ones():
    urban = {"source": "urbanvideo", **REAL, "categories": URBAN}
    with pytest.raises(ParamsError, match=r"training_set\.categories: unknown task categories 'route_plannig' "
                       r"\(did you mean 'route_planning'\?\)"):  # fmt: skip
        parse_params({"training_set": {"categories": ["route_plannig"]}})
    with pytest.raises(
        ParamsError,
        match=r"  - training_set\.categories: task categories 'object_rel_direction' \(a VSI-Bench category\)"
        r".* are not in data\.source 'urbanvideo'",
    ):
        parse_params({"data": urban, "perception": VLM, "training_set": {"categories": list(TASK_CATEGORIES)}})
    with pytest.raises(ParamsError, match=r"training_set\.categories: none of \['counterfactual'\] is in "
                       r"data\.categories"):  # fmt: skip
        parse_params({"data": {**urban, "categories": ["landmark_position"]}, "perception": VLM,
                      "training_set": {"categories": ["counterfactual"]}})  # fmt: skip


def test_the_embedded_world_must_generate_one_of_the_ingested_categories():
    with pytest.raises(ParamsError, match=r"data\.categories: none of \['route_planning'\] is generated by the "
                       r"embedded world \(synthetic\.categories: \['landmark_position'\]\)"):  # fmt: skip
        parse_params({"synthetic": {"categories": ["landmark_position"]}, "data": {"categories": ["route_planning"]},
                      "training_set": {"categories": ["route_planning"]}})  # fmt: skip


def test_the_oracle_backend_is_refused_with_real_data(tmp_path: Path):
    # Before: accepted; the oracle then had no ground truth to describe the real videos from.
    path = _write(tmp_path, {"data": {"source": "urbanvideo", **REAL, "categories": URBAN},
                             "training_set": {"categories": URBAN}})  # fmt: skip
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert "  - perception.backend: 'oracle' describes the embedded world" in msg
    assert "valid backends: oracle, openai, transformers" in msg and "data.source 'urbanvideo'" in msg


TWO = [{"kind": "urbanvideo", "annotations": "u/MCQ.parquet", "videos_dir": "u/videos"},
       {"kind": "vsibench", "annotations": "v/test.parquet", "videos_dir": "v"}]  # fmt: skip


def test_several_sources_in_one_run():
    p = parse_params({"data": {"source": None, "sources": TWO}, "perception": VLM})
    assert p.data.kinds == ("urbanvideo", "vsibench") and p.data.label == "urbanvideo+vsibench"
    assert [s.kind for s in p.data.source_list()] == ["urbanvideo", "vsibench"]
    assert p.data.categories == TASK_CATEGORIES, "the paper's eight are valid for the two together"
    # source left out: the default 'embedded' is not a second form
    assert parse_params({"data": {"sources": TWO}, "perception": VLM}).data.source is None


def test_the_single_source_form_still_works_and_becomes_one_entry():
    p = parse_params({"data": {"source": "vsibench", "annotations": "t.parquet", "videos_dir": "v",
                               "categories": ["route_planning"]},
                      "training_set": {"categories": ["route_planning"]}, "perception": VLM})  # fmt: skip
    (entry,) = p.data.source_list()
    assert (entry.kind, entry.annotations, entry.videos_dir, p.data.label) == ("vsibench", "t.parquet", "v", "vsibench")
    assert Params().data.source_list() == () and Params().data.label == "embedded"


def test_exactly_one_form_of_data_sources():
    with pytest.raises(ParamsError, match=r"data\.sources \(several sources\) and data\.source, data\.annotations "
                       r"\(one source\) are both set"):  # fmt: skip
        parse_params({"data": {"source": "urbanvideo", "annotations": "a", "sources": TWO}, "perception": VLM})
    with pytest.raises(ParamsError, match=r"data\.source is null and data\.sources is empty"):
        parse_params({"data": {"source": None}})
    with pytest.raises(ParamsError, match=r"data\.sources lists kind 'vsibench' more than once"):
        parse_params({"data": {"source": None, "sources": [TWO[1], TWO[1]]}, "perception": VLM})
    with pytest.raises(ParamsError, match=r"data\.sources\.0\.kind: Input should be 'official', 'urbanvideo' or "
                       r"'vsibench'"):  # fmt: skip
        parse_params({"data": {"source": None, "sources": [{**TWO[0], "kind": "embedded"}]}, "perception": VLM})


# --------------------------------------------------------------------------- one schema, each value written once


def test_the_category_lists_default_to_data_categories():
    """``synthetic.categories`` and ``training_set.categories`` follow ``data.categories`` unless given."""
    two = ["action_generation", "obj_appearance_order"]
    params = parse_params({"data": {"categories": two}})
    assert params.synthetic.categories == params.training_set.categories == tuple(two)
    assert parse_params({"data": {"categories": two}, "training_set": {"categories": None}}).training_set.categories
    urban = parse_params({"data": {"source": "urbanvideo", **REAL, "categories": URBAN}, "perception": VLM})
    assert urban.training_set.categories == tuple(URBAN), "the source's own categories, not the paper's eight"
    # an explicit list still wins, and is still checked against data.categories
    assert parse_params(
        {"data": {"categories": two}, "training_set": {"categories": two[:1]}}
    ).training_set.categories == ("action_generation",)
    assert Params().training_set.categories == Params().data.categories == TASK_CATEGORIES


def test_the_projects_params_write_each_category_list_once():
    text = (PROJECT_ROOT / "params.yaml").read_text()
    assert sum(line.lstrip().startswith("categories:") for line in text.splitlines()) == 1, "data.categories only"
    for profile in sorted((PROJECT_ROOT / "profiles").glob("*.yaml")):
        lines = profile.read_text().splitlines()
        assert sum(line.lstrip().startswith("categories:") for line in lines) <= 1, profile.name


def test_a_bad_data_category_is_reported_once_not_on_the_lists_that_follow_it():
    with pytest.raises(ParamsError) as err:
        parse_params({"data": {"categories": ["telepathy"]}})
    assert "data.categories" in str(err.value) and "training_set" not in str(err.value)
    assert "synthetic.categories" not in str(err.value)


def test_validation_bounds_follow_the_keyframe_clamp_unless_set():
    params = parse_params({"keyframes": {"min_frames": 6, "max_frames": 20}})
    assert (params.validation.min_keyframes, params.validation.max_keyframes) == (6, 20)
    params = parse_params({"keyframes": {"min_frames": 6}, "validation": {"max_keyframes": 10}})
    assert (params.validation.min_keyframes, params.validation.max_keyframes) == (6, 10)
    with pytest.raises(ParamsError) as err:  # a bad clamp is reported once, on keyframes
        parse_params({"keyframes": {"min_frames": 40}})
    assert "min_frames" in str(err.value) and "min_keyframes" not in str(err.value)


def test_sources_without_a_source_mean_no_single_source():
    assert parse_params({"data": {"sources": TWO}, "perception": VLM}).data.source is None


def test_no_frozen_model_is_mutated_after_validation():
    """``object.__setattr__`` on a frozen model hid a second way to set a value; each default is filled before."""
    package = PROJECT_ROOT / "src" / "embodied_r" / "config"
    sources = {path.name: path.read_text() for path in sorted(package.glob("*.py"))}
    assert "params.py" in sources and "data.py" in sources
    assert [name for name, source in sources.items() if "object.__setattr__" in source] == []


#: The keys whose code default differs from params.yaml: each default is the paper's value and params.yaml names
#: the deviation (a CPU budget, or a recipe not in the paper). Any other difference is a default written twice.
PAPER_DEFAULTS_PARAMS_DEVIATES_FROM = {
    "data.categories", "split.ratios", "rewards.accuracy_mode", "rewards.schedule",
    "cold_start.enabled", "cold_start.answer", "sft.answer",
    "grpo.learning_rate", "grpo.beta", "grpo.prompts_per_step", "grpo.max_completion_length", "grpo.max_steps",
    "grpo.think_prefill", "grpo.dynamic_sampling",
    "evaluation.max_new_tokens", "evaluation.judge_consistency",
}  # fmt: skip


def _leaves(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and key not in ("noise_study", "executor_config"):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_code_defaults_are_the_papers_or_the_params_files():
    """Where the paper has no value (the synthetic world, the cold start, checkpointing), the code's default is
    params.yaml's: before, ``synthetic.scenes`` was 10 in code and 20 in params.yaml, ``cold_start.letters``
    ``balanced`` and ``every_option``."""
    defaults = _leaves(Params().model_dump(mode="json"))
    project = _leaves(load_params(PROJECT_ROOT / "params.yaml").model_dump(mode="json"))
    differ = {key for key in project if project[key] != defaults[key]}
    derived = {"synthetic.categories", "training_set.categories"}  # follow data.categories
    assert differ - derived == PAPER_DEFAULTS_PARAMS_DEVIATES_FROM
    assert Params().synthetic.scenes == 20 and Params().cold_start.letters == "every_option"


def test_the_executor_is_a_setting_in_process_by_default():
    assert Params().orchestration.executor == "in_process"
    assert (
        parse_params({"orchestration": {"executor": "multiprocess", "max_concurrent": 2}}).orchestration.max_concurrent
        == 2
    )
    assert parse_params({"orchestration": {"executor": "dagster_k8s:k8s_job_executor"}}).orchestration.executor
    with pytest.raises(ParamsError, match=r"orchestration\.executor: unknown executor 'threads'"):
        parse_params({"orchestration": {"executor": "threads"}})
    with pytest.raises(ParamsError, match=r"orchestration: executor_config configures a module:attribute executor"):
        parse_params({"orchestration": {"executor": "multiprocess", "executor_config": {"max_concurrent": 2}}})
