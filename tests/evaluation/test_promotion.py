"""Champion/challenger promotion against a real sqlite MLflow registry."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from embodied_r.evaluation.promotion import (
    ACCURACY_TAG,
    CHAMPION_ALIAS,
    CI95_TAG,
    COMPARED_TAG,
    DECISION_TAG,
    LAST_EVALUATION_TAG,
    PREVIOUS_CHAMPION_ALIAS,
    REASON_TAG,
    ROLLED_BACK_TAG,
    TEST_SET_TAG,
    NotAnImprovementError,
    RollbackError,
    UnknownVersionError,
    champion_history,
    compare_with_champion,
    current_champion,
    decide,
    promote,
    promote_if_better,
    record_evaluation,
    rollback,
)

SET_A = "a" * 64
SET_B = "b" * 64
_names = itertools.count()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def model(client, tmp_path: Path):
    """A fresh registered model name with a helper registering dummy versions (a folder as source)."""
    name = f"lm-{next(_names)}"
    client.create_registered_model(name)
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.txt").write_text("dummy")

    def new_version() -> str:
        return str(client.create_model_version(name, source=str(source)).version)

    return name, new_version


def _tags(client, name: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(name, version).tags)


def _champion(client, name: str) -> str | None:
    mv = current_champion(client, name)
    return None if mv is None else str(mv.version)


def _promote(client, name, version, acc, test_set=SET_A, *, checks=True, margin=0.01, failed=(), ci=None):
    return promote_if_better(
        client,
        name,
        version,
        pooled_accuracy=acc,
        test_set_sha256=test_set,
        checks_passed=checks,
        failed_checks=failed,
        margin=margin,
        pooled_accuracy_ci95=ci,
    )


def test_first_passing_candidate_becomes_champion(client, model) -> None:
    name, new_version = model
    v1 = new_version()
    decision = _promote(client, name, v1, 0.40)
    assert decision.promoted and decision.previous_champion is None and decision.champion_accuracy is None
    assert "no champion yet" in decision.reason
    assert _champion(client, name) == v1
    tags = _tags(client, name, v1)
    assert tags[DECISION_TAG] == "promoted" and tags[TEST_SET_TAG] == SET_A
    assert float(tags[ACCURACY_TAG]) == 0.40 and tags[REASON_TAG] == decision.reason


def test_better_candidate_replaces_champion(client, model) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.40)
    decision = _promote(client, name, v2, 0.45)
    assert decision.promoted and decision.previous_champion == v1 and decision.champion_accuracy == 0.40
    assert _champion(client, name) == v2
    assert str(client.get_model_version_by_alias(name, PREVIOUS_CHAMPION_ALIAS).version) == v1
    assert champion_history(client, name) == [v1, v2]


def test_worse_candidate_is_rejected(client, model) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.40)
    decision = _promote(client, name, v2, 0.35)
    assert not decision.promoted and "does not beat" in decision.reason
    assert _champion(client, name) == v1
    assert _tags(client, name, v2)[DECISION_TAG] == "rejected"


@pytest.mark.parametrize(
    ("accuracy", "margin", "promoted"), [(0.40, 0.0, False), (0.405, 0.01, False), (0.41, 0.01, True)]
)
def test_ties_and_margin(client, model, accuracy: float, margin: float, promoted: bool) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.40, margin=margin)
    decision = _promote(client, name, v2, accuracy, margin=margin)
    assert decision.promoted is promoted
    assert _champion(client, name) == (v2 if promoted else v1)


def test_failed_checks_reject_even_a_better_candidate(client, model) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.40)
    decision = _promote(client, name, v2, 0.90, checks=False, failed=["format_compliance", "no_regression"])
    assert not decision.promoted
    assert decision.reason == "blocking checks failed: format_compliance, no_regression"
    assert _champion(client, name) == v1
    assert _tags(client, name, v2)["embodied_r.checks_passed"] == "False"


def test_failed_checks_block_the_first_champion_too(client, model) -> None:
    name, new_version = model
    decision = _promote(client, name, new_version(), 0.9, checks=False)
    assert not decision.promoted and _champion(client, name) is None


def test_champion_on_another_test_set_is_not_comparable(client, model) -> None:
    name, new_version = model
    v1, v2, v3 = new_version(), new_version(), new_version()
    _promote(client, name, v1, 0.40, SET_A)
    decision = _promote(client, name, v2, 0.90, SET_B)
    assert not decision.promoted and "another test set" in decision.reason
    assert _champion(client, name) == v1
    # re-scoring the champion on the new test set makes the comparison possible again
    record_evaluation(client, name, v1, pooled_accuracy=0.50, test_set_sha256=SET_B)
    decision = _promote(client, name, v3, 0.60, SET_B)
    assert decision.promoted and decision.champion_accuracy == 0.50


def test_current_champion_is_not_repromoted(client, model) -> None:
    name, new_version = model
    v1 = new_version()
    _promote(client, name, v1, 0.40)
    decision = _promote(client, name, v1, 0.40)
    assert not decision.promoted and "already the champion" in decision.reason
    assert champion_history(client, name) == [v1]


def test_manual_promote_and_rollback(client, model) -> None:
    name, new_version = model
    v1, v2, v3 = new_version(), new_version(), new_version()
    _promote(client, name, v1, 0.40)
    _promote(client, name, v2, 0.50)
    # v3 was never evaluated: not an improvement that can be shown, so it needs force
    manual = promote(client, name, v3, "hotfix for a prompt bug", force=True)
    assert manual.promoted and manual.previous_champion == v2
    assert _champion(client, name) == v3
    assert _tags(client, name, v3)[REASON_TAG] == (
        f"manual promotion, forced (v{v3} has no recorded accuracy to compare): hotfix for a prompt bug"
    )
    assert champion_history(client, name) == [v1, v2, v3]

    back = rollback(client, name, "v3 regressed in production")
    assert (back.candidate_version, back.previous_champion) == (v2, v3)
    assert _champion(client, name) == v2
    assert str(client.get_model_version_by_alias(name, PREVIOUS_CHAMPION_ALIAS).version) == v1
    assert _tags(client, name, v3)[DECISION_TAG] == "rolled_back"

    rollback(client, name)
    assert _champion(client, name) == v1
    with pytest.raises(RollbackError):
        rollback(client, name)
    assert _champion(client, name) == v1


def test_manual_promote_needs_reason(client, model) -> None:
    name, new_version = model
    with pytest.raises(ValueError, match="reason"):
        promote(client, name, new_version(), "  ")


def test_rollback_without_champion(client, model) -> None:
    name, _ = model
    with pytest.raises(RollbackError):
        rollback(client, name)


def test_alias_set_outside_module_is_respected(client, model) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    record_evaluation(client, name, v1, pooled_accuracy=0.3, test_set_sha256=SET_A)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, v1)
    decision = _promote(client, name, v2, 0.5)
    assert decision.promoted and decision.previous_champion == v1
    assert champion_history(client, name) == [v1, v2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0.5, SET_A, 0.4, SET_A), True),
        ((0.4, SET_A, 0.4, SET_A), False),
        ((0.5, SET_A, 0.4, SET_B), False),
        ((0.5, SET_A, None, None), False),
    ],
)
def test_decide_is_pure(args: tuple, expected: bool) -> None:
    assert decide(*args, has_champion=True, checks_passed=True)[0] is expected


def test_decide_rejects_negative_margin() -> None:
    with pytest.raises(ValueError):
        decide(0.5, SET_A, None, None, has_champion=False, checks_passed=True, margin=-0.1)


# --- decisions made by hand stick (issue 36: items 13, 14, 15) ---------------------------------------------------


def test_a_rolled_back_version_is_never_auto_promoted_again(client, model) -> None:
    """The next ``evaluation_results`` run (an unrelated evaluation param changed) re-evaluates the rolled-back
    version: it used to win again and lose its ``rolled_back`` tag."""
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.40)
    _promote(client, name, v2, 0.50)
    rollback(client, name, "v2 answers in the wrong language")
    assert _champion(client, name) == v1

    for accuracy in (0.50, 0.90):  # the same score again, then a far better one: neither undoes the rollback
        decision = _promote(client, name, v2, accuracy)
        assert not decision.promoted and _champion(client, name) == v1
        assert "rolled back" in decision.reason and f"registry promote {v2}" in decision.reason
        tags = _tags(client, name, v2)
        assert tags[DECISION_TAG] == "rolled_back" and "wrong language" in tags[REASON_TAG]
        assert "wrong language" in tags[ROLLED_BACK_TAG]
        assert float(tags[ACCURACY_TAG]) == accuracy  # the evaluation itself is recorded
        assert tags[LAST_EVALUATION_TAG].startswith("kept: ")
    assert champion_history(client, name) == [v1]

    # another version still competes as usual against the restored champion
    v3 = new_version()
    assert _promote(client, name, v3, 0.45).promoted

    # only a promotion by hand brings v2 back; then it is an ordinary version again
    manual = promote(client, name, v2, "language fixed in the serving prompt", margin=0.01)
    assert manual.promoted and _champion(client, name) == v2
    tags = _tags(client, name, v2)
    assert ROLLED_BACK_TAG not in tags and tags[DECISION_TAG] == "promoted"


def test_re_evaluating_the_champion_keeps_its_decision_and_reason(client, model) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.40)
    promoted = _promote(client, name, v2, 0.50, ci=(0.45, 0.55))
    before = _tags(client, name, v2)

    decision = _promote(client, name, v2, 0.48, ci=(0.43, 0.53))  # re-scored, e.g. another bootstrap seed
    assert not decision.promoted and "already the champion" in decision.reason
    after = _tags(client, name, v2)
    assert after[DECISION_TAG] == "promoted" and after[REASON_TAG] == promoted.reason
    assert after[COMPARED_TAG] == before[COMPARED_TAG] == v1
    assert float(after[ACCURACY_TAG]) == 0.48 and after[CI95_TAG] == "[0.43, 0.53]"  # the new evaluation
    assert after[LAST_EVALUATION_TAG].startswith("kept: ") and "0.4800" in after[LAST_EVALUATION_TAG]
    assert _champion(client, name) == v2 and champion_history(client, name) == [v1, v2]


def test_an_evaluation_without_an_interval_drops_the_old_one(client, model) -> None:
    name, new_version = model
    v1 = new_version()
    record_evaluation(client, name, v1, pooled_accuracy=0.4, test_set_sha256=SET_A, pooled_accuracy_ci95=[0.3, 0.5])
    assert _tags(client, name, v1)[CI95_TAG] == "[0.3, 0.5]"
    record_evaluation(client, name, v1, pooled_accuracy=0.6, test_set_sha256=SET_A)
    assert CI95_TAG not in _tags(client, name, v1)


def test_manual_promotion_of_a_version_no_better_than_the_champion_needs_force(client, model) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.50, ci=(0.44, 0.56))
    _promote(client, name, v2, 0.45, ci=(0.39, 0.51))  # rejected automatically

    comparison = compare_with_champion(client, name, v2, margin=0.01)
    assert not comparison.improving and comparison.gain == pytest.approx(-0.05)
    shown = comparison.render()
    assert f"candidate v{v2}: pooled accuracy 0.4500 [0.3900, 0.5100]" in shown
    assert f"champion  v{v1}: pooled accuracy 0.5000 [0.4400, 0.5600]" in shown
    assert "gain -0.0500 (required margin 0.0100)" in shown

    with pytest.raises(NotAnImprovementError, match="--force") as refused:
        promote(client, name, v2, "I prefer its answers", margin=0.01)
    assert refused.value.comparison.gain == pytest.approx(-0.05)
    assert _champion(client, name) == v1 and _tags(client, name, v2)[DECISION_TAG] == "rejected"

    forced = promote(client, name, v2, "I prefer its answers", force=True, margin=0.01)
    assert forced.promoted and _champion(client, name) == v2
    assert _tags(client, name, v2)[REASON_TAG] == (
        f"manual promotion, forced (accuracy 0.4500 does not beat champion v{v1} 0.5000 by margin 0.0100): "
        "I prefer its answers"
    )


def test_manual_promotion_of_a_better_version_needs_no_force(client, model) -> None:
    name, new_version = model
    v1, v2, v3 = new_version(), new_version(), new_version()
    _promote(client, name, v1, 0.50)
    _promote(client, name, v2, 0.55, checks=False)  # better, but blocked by a data check
    decision = promote(client, name, v2, "the failed check was a false alarm", margin=0.01)
    assert decision.promoted and decision.reason == "manual promotion: the failed check was a false alarm"
    # a version scored on another test set is not comparable: not an improvement that can be shown
    _promote(client, name, v3, 0.90, SET_B)
    assert "another test set" in compare_with_champion(client, name, v3).verdict
    with pytest.raises(NotAnImprovementError):
        promote(client, name, v3, "looks better")


def test_manual_promotion_of_the_champion_changes_nothing(client, model) -> None:
    name, new_version = model
    v1 = new_version()
    first = _promote(client, name, v1, 0.50)
    decision = promote(client, name, v1, "again")
    assert not decision.promoted and "already the champion" in decision.reason
    assert _tags(client, name, v1)[REASON_TAG] == first.reason and champion_history(client, name) == [v1]


@pytest.mark.parametrize("version", ["9", "abc"])
def test_an_unknown_version_is_one_message_listing_the_versions(client, model, version: str) -> None:
    name, new_version = model
    v1, v2 = new_version(), new_version()
    _promote(client, name, v1, 0.50)
    with pytest.raises(UnknownVersionError) as unknown:
        promote(client, name, version, "typo", force=True)
    assert f"no version '{version}'" in str(unknown.value)
    assert f"its versions are {v1}, {v2} (champion v{v1})" in str(unknown.value)


def test_promoting_in_a_model_with_no_versions_says_so(client) -> None:
    with pytest.raises(UnknownVersionError, match="no registered versions yet"):
        promote(client, "never-registered", "1", "why")
    assert champion_history(client, "never-registered") == []


# --- the command line --------------------------------------------------------------------------------------------


@pytest.fixture
def registry_project(tiny_project: Path, tmp_path: Path):
    """A project whose params point tracking at its own sqlite store, with two evaluated versions (v1 champion)."""
    from mlflow import MlflowClient

    from embodied_r.config import load_params
    from embodied_r.tracking import resolve_tracking_uri

    tracking = load_params(tiny_project / "params.yaml").tracking
    uri = resolve_tracking_uri(tracking.tracking_uri, tiny_project)
    assert uri.startswith(f"sqlite:///{tiny_project}")
    (tiny_project / Path(tracking.tracking_uri.removeprefix("sqlite:///")).parent).mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = tracking.registered_model
    client.create_registered_model(name)
    source = tmp_path / "weights"
    source.mkdir()
    (source / "weights.txt").write_text("dummy")
    for accuracy, ci in ((0.50, (0.44, 0.56)), (0.45, (0.39, 0.51))):
        version = client.create_model_version(name, source=str(source)).version
        _promote(client, name, version, accuracy, ci=ci)
    return tiny_project, client, name


def _run(root: Path, capsys, *argv: str) -> tuple[int, str, str]:
    from embodied_r.cli import main

    code = main(["--root", str(root), "registry", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_promote_shows_the_comparison_and_needs_force(registry_project, capsys) -> None:
    root, client, name = registry_project
    code, out, err = _run(root, capsys, "promote", "2", "--reason", "I prefer its answers")
    assert code == 1 and _champion(client, name) == "1"
    assert "candidate v2: pooled accuracy 0.4500 [0.3900, 0.5100]" in out
    assert "champion  v1: pooled accuracy 0.5000 [0.4400, 0.5600]" in out
    assert "gain -0.0500 (required margin" in out
    assert "not an improvement" in err and "--force" in err and "Traceback" not in err

    code, out, _ = _run(root, capsys, "promote", "v2", "--reason", "I prefer its answers", "--force")
    assert code == 0 and _champion(client, name) == "2"
    assert "manual promotion, forced" in out and "gain -0.0500" in out


def test_cli_promote_of_an_unknown_version_lists_the_versions(registry_project, capsys) -> None:
    root, _client, name = registry_project
    code, out, err = _run(root, capsys, "promote", "7", "--reason", "typo")
    assert code == 1 and out == ""
    assert err.strip() == (
        f"{name} has no version '7'; its versions are 1, 2 (champion v1). "
        "`embodied-r registry status` lists them with their accuracy and decision."
    )


def test_cli_status_and_rollback_show_that_a_rollback_sticks(registry_project, capsys) -> None:
    root, client, name = registry_project
    assert _run(root, capsys, "promote", "2", "--reason", "try it", "--force")[0] == 0
    code, out, _ = _run(root, capsys, "rollback", "--reason", "regression found in review")
    assert code == 0 and _champion(client, name) == "1"
    _promote(client, name, "2", 0.60)  # the next evaluation_results run
    code, out, _ = _run(root, capsys, "status")
    assert code == 0 and _champion(client, name) == "1"
    assert f"{name}: champion v1" in out
    assert "rolled back: regression found in review; champion returned to v1 (never promoted automatically" in out
    assert "last evaluation: kept: v2 was rolled back" in out


def test_cli_status_of_a_fresh_project(tiny_project: Path, capsys) -> None:
    code, out, err = _run(tiny_project, capsys, "status")
    assert code == 0 and "no registered versions yet" in out and err == ""
