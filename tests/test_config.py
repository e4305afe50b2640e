from pathlib import Path

import pytest
import yaml

from embodied_r.config import KeyframesConfig, Params, ParamsError, load_params, parse_params
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
    with pytest.raises(ParamsError, match="unknown categories"):
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
