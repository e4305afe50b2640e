"""Champion/challenger promotion in the MLflow model registry (aliases, never the deprecated stages).

A registered version becomes the ``champion`` (alias) only if

1. its blocking checks passed, and
2. there is no champion yet, or it beats the champion's pooled accuracy by at least ``margin`` **on the same test
   set** — both versions carry the sha256 of the ``test.jsonl`` they were scored on (tag
   ``embodied_r.test_set_sha256``) and their pooled accuracy (``embodied_r.pooled_accuracy``).

Ties never promote: a candidate must be strictly better, and by at least ``margin`` (``margin=0`` still needs
``candidate > champion``). Churning the production model for no measured gain is not worth the risk.

A champion evaluated on **another test set** (or with no recorded accuracy) is not comparable: the candidate is
**rejected**, with the reason "champion vN was evaluated on another test set". Accuracies on different test sets
say nothing about which model is better, and promoting on the candidate's own number alone would let a changed
(easier) test set move production. The way forward is explicit: re-score the champion on the new test set
(:func:`record_evaluation`) and decide again, or promote by hand (:func:`promote`, e.g. ``embodied-r promote``).

Every decision is recorded as tags on the candidate version (``embodied_r.decision`` = ``promoted`` |
``rejected``, ``embodied_r.reason``, ``embodied_r.compared_to``, ``embodied_r.margin``, ``embodied_r.checks_passed``)
and returned as a :class:`PromotionDecision`. The chain of champions is kept in the registered model's tag
``embodied_r.champion_history`` (a JSON list of versions) and mirrored by the ``previous-champion`` alias;
:func:`rollback` steps back one champion along it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

__all__ = [
    "CHAMPION_ALIAS",
    "PREVIOUS_CHAMPION_ALIAS",
    "PromotionDecision",
    "RollbackError",
    "champion_history",
    "current_champion",
    "decide",
    "promote",
    "promote_if_better",
    "record_evaluation",
    "rollback",
]

CHAMPION_ALIAS = "champion"
PREVIOUS_CHAMPION_ALIAS = "previous-champion"

ACCURACY_TAG = "embodied_r.pooled_accuracy"
TEST_SET_TAG = "embodied_r.test_set_sha256"
DECISION_TAG = "embodied_r.decision"
REASON_TAG = "embodied_r.reason"
COMPARED_TAG = "embodied_r.compared_to"
MARGIN_TAG = "embodied_r.margin"
CHECKS_TAG = "embodied_r.checks_passed"
HISTORY_TAG = "embodied_r.champion_history"

# Float noise must not turn "equal" into "better".
_EPS = 1e-12


class PromotionDecision(BaseModel):
    """The outcome of a promotion decision (also recorded as tags on ``candidate_version``)."""

    model_config = ConfigDict(frozen=True)

    promoted: bool
    reason: str
    candidate_version: str
    previous_champion: str | None
    candidate_accuracy: float | None
    champion_accuracy: float | None


class RollbackError(RuntimeError):
    """There is no earlier champion to roll back to."""


def decide(
    candidate_accuracy: float,
    candidate_test_set: str,
    champion_accuracy: float | None,
    champion_test_set: str | None,
    *,
    has_champion: bool,
    checks_passed: bool,
    failed_checks: Sequence[str] = (),
    margin: float = 0.0,
    champion_version: str | None = None,
) -> tuple[bool, str]:
    """Pure decision rule: ``(promote?, reason)`` (see the module docstring).

    >>> decide(0.50, "abc", 0.45, "abc", has_champion=True, checks_passed=True, margin=0.01)[0]
    True
    >>> decide(0.45, "abc", 0.45, "abc", has_champion=True, checks_passed=True)[1]
    'accuracy 0.4500 does not beat champion 0.4500 by margin 0.0000'
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not checks_passed:
        failed = ", ".join(sorted(failed_checks)) or "unspecified"
        return False, f"blocking checks failed: {failed}"
    if not math.isfinite(candidate_accuracy):
        return False, f"candidate accuracy is not a number ({candidate_accuracy})"
    if not has_champion:
        return True, f"no champion yet; first passing candidate (accuracy {candidate_accuracy:.4f})"
    who = f"champion v{champion_version}" if champion_version is not None else "champion"
    if champion_test_set is None or champion_accuracy is None or not math.isfinite(champion_accuracy):
        return False, f"{who} has no recorded accuracy/test set to compare with; re-evaluate it or promote manually"
    if champion_test_set != candidate_test_set:
        return False, (
            f"{who} was evaluated on another test set (sha256 {champion_test_set[:12]} vs {candidate_test_set[:12]}); "
            "not comparable: re-evaluate the champion on this test set or promote manually"
        )
    gain = candidate_accuracy - champion_accuracy
    if gain > _EPS and gain >= margin - _EPS:
        return (
            True,
            f"accuracy {candidate_accuracy:.4f} beats {who} {champion_accuracy:.4f} by {gain:+.4f} >= {margin:.4f}",
        )
    return (
        False,
        f"accuracy {candidate_accuracy:.4f} does not beat {who} {champion_accuracy:.4f} by margin {margin:.4f}",
    )


def current_champion(client: Any, name: str) -> Any | None:
    """The ``champion`` model version of ``name``, or ``None`` when the alias is not set."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def champion_history(client: Any, name: str) -> list[str]:
    """The versions that were champion, oldest first (the registered model's ``embodied_r.champion_history`` tag)."""
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    history = [str(v) for v in json.loads(raw)] if raw else []
    champion = current_champion(client, name)
    if champion is not None and (not history or history[-1] != str(champion.version)):
        history.append(str(champion.version))  # the alias was moved outside this module: trust the alias
    return history


def _set_history(client: Any, name: str, history: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    if len(history) >= 2:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION_ALIAS, history[-2])
    else:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model_alias(name, PREVIOUS_CHAMPION_ALIAS)


def _make_champion(client: Any, name: str, version: str) -> str | None:
    """Move ``champion`` to ``version``, append it to the history; returns the previous champion."""
    history = champion_history(client, name)
    previous = history[-1] if history else None
    if previous != version:
        history.append(version)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    _set_history(client, name, history)
    return previous


def _tag_decision(client: Any, name: str, version: str, decision: str, reason: str, **extra: Any) -> None:
    client.set_model_version_tag(name, version, DECISION_TAG, decision)
    client.set_model_version_tag(name, version, REASON_TAG, reason[:5000])
    for key, value in extra.items():
        client.set_model_version_tag(name, version, key, "" if value is None else str(value))


def record_evaluation(
    client: Any, name: str, version: str | int, *, pooled_accuracy: float, test_set_sha256: str
) -> None:
    """Tag a version with its pooled accuracy and the sha256 of the test set it was scored on."""
    client.set_model_version_tag(name, str(version), ACCURACY_TAG, repr(float(pooled_accuracy)))
    client.set_model_version_tag(name, str(version), TEST_SET_TAG, test_set_sha256)


def _float_tag(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, ValueError):
        return None


def promote_if_better(
    client: Any,
    name: str,
    version: str | int,
    *,
    pooled_accuracy: float,
    test_set_sha256: str,
    checks_passed: bool,
    failed_checks: Sequence[str] = (),
    margin: float = 0.0,
) -> PromotionDecision:
    """Record the candidate's evaluation, decide against the current champion, tag the decision, move the alias.

    >>> promote_if_better(client, "embodied-r-lm", 3, pooled_accuracy=0.47, test_set_sha256=sha,
    ...                   checks_passed=True, margin=0.01)  # doctest: +SKIP
    PromotionDecision(promoted=True, reason='accuracy 0.4700 beats champion v2 0.4500 by +0.0200 >= 0.0100', ...)
    """
    version = str(version)
    record_evaluation(client, name, version, pooled_accuracy=pooled_accuracy, test_set_sha256=test_set_sha256)
    champion = current_champion(client, name)
    champion_version = None if champion is None else str(champion.version)
    champion_tags = {} if champion is None else dict(champion.tags)
    champion_accuracy = _float_tag(champion_tags, ACCURACY_TAG)
    if champion_version == version:
        promoted, reason = False, f"v{version} is already the champion"
    else:
        promoted, reason = decide(
            pooled_accuracy,
            test_set_sha256,
            champion_accuracy,
            champion_tags.get(TEST_SET_TAG),
            has_champion=champion is not None,
            checks_passed=checks_passed,
            failed_checks=failed_checks,
            margin=margin,
            champion_version=champion_version,
        )
    _tag_decision(
        client,
        name,
        version,
        "promoted" if promoted else "rejected",
        reason,
        **{COMPARED_TAG: champion_version, MARGIN_TAG: margin, CHECKS_TAG: checks_passed},
    )
    if promoted:
        _make_champion(client, name, version)
    log.info("%s v%s: %s (%s)", name, version, "promoted to champion" if promoted else "not promoted", reason)
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        candidate_version=version,
        previous_champion=champion_version,
        candidate_accuracy=pooled_accuracy,
        champion_accuracy=champion_accuracy,
    )


def promote(client: Any, name: str, version: str | int, reason: str) -> PromotionDecision:
    """Make ``version`` the champion by hand (no comparison); the reason is recorded (decision ``promoted``)."""
    if not reason.strip():
        raise ValueError("a manual promotion needs a reason")
    version = str(version)
    client.get_model_version(name, version)  # raises for an unknown version
    previous = current_champion(client, name)
    reason = f"manual promotion: {reason}"
    _tag_decision(client, name, version, "promoted", reason, **{COMPARED_TAG: previous and previous.version})
    _make_champion(client, name, version)
    log.info("%s v%s promoted to champion by hand: %s", name, version, reason)
    tags = dict(client.get_model_version(name, version).tags)
    return PromotionDecision(
        promoted=True,
        reason=reason,
        candidate_version=version,
        previous_champion=None if previous is None else str(previous.version),
        candidate_accuracy=_float_tag(tags, ACCURACY_TAG),
        champion_accuracy=None if previous is None else _float_tag(dict(previous.tags), ACCURACY_TAG),
    )


def rollback(client: Any, name: str, reason: str = "rollback") -> PromotionDecision:
    """Give the ``champion`` alias back to the previous champion; the demoted version is tagged ``rolled_back``.

    Steps back one entry of the champion history each call. Raises :class:`RollbackError` without an earlier
    champion. The returned decision's ``candidate_version`` is the restored champion.
    """
    history = champion_history(client, name)
    if len(history) < 2:
        raise RollbackError(f"{name}: no previous champion to roll back to (history {history})")
    demoted, restored = history[-1], history[-2]
    client.set_registered_model_alias(name, CHAMPION_ALIAS, restored)
    _set_history(client, name, history[:-1])
    _tag_decision(client, name, demoted, "rolled_back", f"{reason}: champion returned to v{restored}")
    client.set_model_version_tag(name, restored, REASON_TAG, f"restored by rollback from v{demoted}: {reason}")
    log.info("%s: champion rolled back from v%s to v%s (%s)", name, demoted, restored, reason)
    tags = {v: dict(client.get_model_version(name, v).tags) for v in (demoted, restored)}
    return PromotionDecision(
        promoted=True,
        reason=f"rollback: {reason}",
        candidate_version=restored,
        previous_champion=demoted,
        candidate_accuracy=_float_tag(tags[restored], ACCURACY_TAG),
        champion_accuracy=_float_tag(tags[demoted], ACCURACY_TAG),
    )
