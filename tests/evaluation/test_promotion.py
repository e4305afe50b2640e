"""Champion/challenger promotion against a real sqlite MLflow registry."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from embodied_r.evaluation.promotion import (
    ACCURACY_TAG,
    CHAMPION_ALIAS,
    DECISION_TAG,
    PREVIOUS_CHAMPION_ALIAS,
    REASON_TAG,
    TEST_SET_TAG,
    RollbackError,
    champion_history,
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


def _promote(client, name, version, acc, test_set=SET_A, *, checks=True, margin=0.01, failed=()):
    return promote_if_better(
        client,
        name,
        version,
        pooled_accuracy=acc,
        test_set_sha256=test_set,
        checks_passed=checks,
        failed_checks=failed,
        margin=margin,
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
    manual = promote(client, name, v3, "hotfix for a prompt bug")
    assert manual.promoted and manual.previous_champion == v2
    assert _champion(client, name) == v3
    assert _tags(client, name, v3)[REASON_TAG] == "manual promotion: hotfix for a prompt bug"
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
