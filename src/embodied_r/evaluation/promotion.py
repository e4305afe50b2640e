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

Decisions made by hand stick; an automatic evaluation only records itself (``embodied_r.last_evaluation``) next to
them:

* A version demoted by :func:`rollback` carries ``embodied_r.rolled_back`` and is **never promoted automatically
  again**, however well it scores: only a manual :func:`promote` (``embodied-r registry promote``) lifts it.
* Re-evaluating the **current champion** records its new accuracy but keeps its decision and promotion reason.

A manual :func:`promote` shows the comparison with the champion (:func:`compare_with_champion`: both pooled
accuracies with their 95% intervals when recorded, the gain, the margin) and refuses a version that is not an
improvement by the same rule as the automatic one unless ``force=True`` (``--force``); a forced promotion says so
in its recorded reason.

The rule itself, pure (no MLflow client), is :mod:`embodied_r.evaluation.promotion_rule`; this module applies it
to the registry.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from mlflow.exceptions import MlflowException

from embodied_r.evaluation.promotion_rule import (
    ACCURACY_TAG,
    CHECKS_TAG,
    CI95_TAG,
    COMPARED_TAG,
    DECISION_TAG,
    HISTORY_TAG,
    LAST_EVALUATION_TAG,
    MARGIN_TAG,
    REASON_TAG,
    ROLLED_BACK_TAG,
    TEST_SET_TAG,
    Comparison,
    PromotionDecision,
    VersionScore,
    _float_tag,
    _rolled_back,
    decide,
    version_score,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHAMPION_ALIAS",
    "PREVIOUS_CHAMPION_ALIAS",
    "Comparison",
    "NotAnImprovementError",
    "PromotionDecision",
    "RollbackError",
    "UnknownVersionError",
    "VersionScore",
    "champion_history",
    "compare_with_champion",
    "current_champion",
    "decide",
    "promote",
    "promote_if_better",
    "record_evaluation",
    "rollback",
    "version_score",
]

CHAMPION_ALIAS = "champion"
PREVIOUS_CHAMPION_ALIAS = "previous-champion"


class RollbackError(RuntimeError):
    """There is no earlier champion to roll back to."""


class UnknownVersionError(LookupError):
    """The registered model has no such version (the message lists the versions it has)."""


class NotAnImprovementError(RuntimeError):
    """A manual promotion of a version that does not beat the champion, without ``force``."""

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison
        champion = comparison.champion
        who = "the champion" if champion is None else f"champion v{champion.version}"
        super().__init__(
            f"v{comparison.candidate.version} is not an improvement on {who} ({comparison.verdict}); nothing "
            "changed. To promote it anyway, repeat with --force: the forced promotion records the comparison "
            "in its reason."
        )


def current_champion(client: Any, name: str) -> Any | None:
    """The ``champion`` model version of ``name``, or ``None`` when the alias is not set."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def champion_history(client: Any, name: str) -> list[str]:
    """The versions that were champion, oldest first (the registered model's ``embodied_r.champion_history`` tag).

    Empty when the model is not registered yet.
    """
    try:
        raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return []
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
    client: Any,
    name: str,
    version: str | int,
    *,
    pooled_accuracy: float,
    test_set_sha256: str,
    pooled_accuracy_ci95: Sequence[float] | None = None,
) -> None:
    """Tag a version with its pooled accuracy (and its 95% interval) and the sha256 of the test set it was scored on.

    Only the evaluation tags change: the decision and its reason stay as they are.
    """
    version = str(version)
    client.set_model_version_tag(name, version, ACCURACY_TAG, repr(float(pooled_accuracy)))
    client.set_model_version_tag(name, version, TEST_SET_TAG, test_set_sha256)
    if pooled_accuracy_ci95 is not None:
        low, high = (float(x) for x in pooled_accuracy_ci95)
        client.set_model_version_tag(name, version, CI95_TAG, json.dumps([low, high]))
    else:  # an interval of an earlier evaluation would not belong to this accuracy
        with contextlib.suppress(MlflowException):
            client.delete_model_version_tag(name, version, CI95_TAG)


def _get_version(client: Any, name: str, version: str) -> Any:
    """The model version, or :class:`UnknownVersionError` naming the versions that exist."""
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        log.debug("model version %s v%s not found", name, version, exc_info=True)
    existing = sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int)
    if not existing:
        raise UnknownVersionError(
            f"{name} has no registered versions yet, so there is no v{version} to promote: the grpo_lm stage "
            "registers one (`dvc repro grpo_lm`)."
        )
    champion = current_champion(client, name)
    label = "" if champion is None else f" (champion v{champion.version})"
    raise UnknownVersionError(
        f"{name} has no version {version!r}; its versions are {', '.join(existing)}{label}. "
        "`embodied-r registry status` lists them with their accuracy and decision."
    )


def compare_with_champion(client: Any, name: str, version: str | int, *, margin: float = 0.0) -> Comparison:
    """Compare a registered version with the current champion by the automatic rule (:func:`decide`).

    Raises :class:`UnknownVersionError` for a version the model does not have.
    """
    version = str(version)
    candidate = version_score(_get_version(client, name, version))
    champion_mv = current_champion(client, name)
    champion = None if champion_mv is None else version_score(champion_mv)
    if champion is not None and champion.version == version:
        return Comparison(
            candidate=candidate, champion=champion, margin=margin, improving=False,
            verdict=f"v{version} is already the champion",
        )  # fmt: skip
    if candidate.accuracy is None:
        improving, verdict = champion is None, f"v{version} has no recorded accuracy to compare"
        if champion is None:
            verdict += "; there is no champion yet"
    else:
        improving, verdict = decide(
            candidate.accuracy,
            candidate.test_set or "",
            None if champion is None else champion.accuracy,
            None if champion is None else champion.test_set,
            has_champion=champion is not None,
            checks_passed=True,  # a manual promotion judges accuracy; the checks gate the automatic one
            margin=margin,
            champion_version=None if champion is None else champion.version,
        )
    return Comparison(candidate=candidate, champion=champion, margin=margin, improving=improving, verdict=verdict)


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
    pooled_accuracy_ci95: Sequence[float] | None = None,
) -> PromotionDecision:
    """Record the candidate's evaluation, decide against the current champion, tag the decision, move the alias.

    The current champion (re-evaluated) keeps its decision and promotion reason, and a version rolled back by hand
    is never promoted here: both only get their new evaluation recorded (``embodied_r.last_evaluation``).
    """
    version = str(version)
    record_evaluation(
        client,
        name,
        version,
        pooled_accuracy=pooled_accuracy,
        test_set_sha256=test_set_sha256,
        pooled_accuracy_ci95=pooled_accuracy_ci95,
    )
    champion = current_champion(client, name)
    champion_version = None if champion is None else str(champion.version)
    champion_tags = {} if champion is None else dict(champion.tags)
    champion_accuracy = _float_tag(champion_tags, ACCURACY_TAG)
    rolled_back = _rolled_back(dict(client.get_model_version(name, version).tags))
    keep_record = False  # True: a decision made earlier (a promotion, a rollback) stands; only the evaluation is new
    if champion_version == version:
        promoted, keep_record = False, True
        reason = f"v{version} is already the champion; re-evaluated (accuracy {pooled_accuracy:.4f}), decision kept"
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
        if rolled_back is not None:
            # A rollback is a human decision the metrics did not see: an evaluation must not undo it.
            keep_record = True
            reason = (
                f"v{version} was rolled back ({rolled_back}) and is never promoted automatically again "
                f"(the comparison alone: {reason}); to make it the champion: "
                f"embodied-r registry promote {version} --reason ..."
            )
            promoted = False
    outcome = "kept" if keep_record else "promoted" if promoted else "rejected"
    if not keep_record:
        _tag_decision(
            client,
            name,
            version,
            outcome,
            reason,
            **{COMPARED_TAG: champion_version, MARGIN_TAG: margin, CHECKS_TAG: checks_passed},
        )
    client.set_model_version_tag(name, version, LAST_EVALUATION_TAG, f"{outcome}: {reason}"[:5000])
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


def promote(
    client: Any, name: str, version: str | int, reason: str, *, force: bool = False, margin: float = 0.0
) -> PromotionDecision:
    """Make ``version`` the champion by hand; the reason is recorded (decision ``promoted``).

    The version is compared with the champion first (:func:`compare_with_champion`, with ``margin``); one that is not
    an improvement raises :class:`NotAnImprovementError` unless ``force``, and a forced promotion records the
    comparison in its reason. Promoting a rolled-back version lifts its rollback. Raises
    :class:`UnknownVersionError` for a version the model does not have; the current champion is left as it is.
    """
    if not reason.strip():
        raise ValueError("a manual promotion needs a reason")
    version = str(version)
    comparison = compare_with_champion(client, name, version, margin=margin)
    champion = comparison.champion
    if champion is not None and champion.version == version:
        return PromotionDecision(
            promoted=False, reason=f"v{version} is already the champion; nothing changed",
            candidate_version=version, previous_champion=version,
            candidate_accuracy=comparison.candidate.accuracy, champion_accuracy=champion.accuracy,
        )  # fmt: skip
    if not comparison.improving and not force:
        raise NotAnImprovementError(comparison)
    prefix = "manual promotion" if comparison.improving else f"manual promotion, forced ({comparison.verdict})"
    reason = f"{prefix}: {reason}"
    _tag_decision(
        client, name, version, "promoted", reason,
        **{COMPARED_TAG: None if champion is None else champion.version, MARGIN_TAG: margin},
    )  # fmt: skip
    if comparison.candidate.rolled_back is not None:
        with contextlib.suppress(MlflowException):
            client.delete_model_version_tag(name, version, ROLLED_BACK_TAG)
    _make_champion(client, name, version)
    log.info("%s v%s promoted to champion by hand: %s", name, version, reason)
    return PromotionDecision(
        promoted=True,
        reason=reason,
        candidate_version=version,
        previous_champion=None if champion is None else champion.version,
        candidate_accuracy=comparison.candidate.accuracy,
        champion_accuracy=None if champion is None else champion.accuracy,
    )


def rollback(client: Any, name: str, reason: str = "rollback") -> PromotionDecision:
    """Give the ``champion`` alias back to the previous champion; the demoted version is tagged ``rolled_back``.

    The demoted version also carries ``embodied_r.rolled_back`` from then on: automatic evaluation never promotes
    it again, only a manual :func:`promote` does. Steps back one entry of the champion history each call. Raises
    :class:`RollbackError` without an earlier champion. The returned decision's ``candidate_version`` is the
    restored champion.
    """
    history = champion_history(client, name)
    if len(history) < 2:
        raise RollbackError(f"{name}: no previous champion to roll back to (history {history})")
    demoted, restored = history[-1], history[-2]
    client.set_registered_model_alias(name, CHAMPION_ALIAS, restored)
    _set_history(client, name, history[:-1])
    _tag_decision(client, name, demoted, "rolled_back", f"{reason}: champion returned to v{restored}")
    client.set_model_version_tag(name, demoted, ROLLED_BACK_TAG, f"{reason}; champion returned to v{restored}")
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
