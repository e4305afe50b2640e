"""The promotion rule, pure: what the registry records of a version's evaluation and whether a candidate beats the
champion.

:func:`decide` is the rule (the module docstring of :mod:`embodied_r.evaluation.promotion` states it in full);
:func:`version_score` reads a model version's tags into a :class:`VersionScore`; a :class:`Comparison` holds both
versions, the gain and the verdict; the tag names are the record's schema. Nothing here talks to MLflow:
:mod:`embodied_r.evaluation.promotion` applies the rule to the registry (aliases, tags, history, rollback).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

ACCURACY_TAG = "embodied_r.pooled_accuracy"
CI95_TAG = "embodied_r.pooled_accuracy_ci95"  # JSON [low, high]: the 95% bootstrap interval of ACCURACY_TAG
TEST_SET_TAG = "embodied_r.test_set_sha256"
DECISION_TAG = "embodied_r.decision"
REASON_TAG = "embodied_r.reason"
COMPARED_TAG = "embodied_r.compared_to"
MARGIN_TAG = "embodied_r.margin"
CHECKS_TAG = "embodied_r.checks_passed"
HISTORY_TAG = "embodied_r.champion_history"
#: Set by :func:`rollback` (its reason), removed only by a manual :func:`promote`: the version is never auto-promoted.
ROLLED_BACK_TAG = "embodied_r.rolled_back"
#: The outcome of the version's latest automatic evaluation (also when it leaves the decision tags as they were).
LAST_EVALUATION_TAG = "embodied_r.last_evaluation"

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


class VersionScore(BaseModel):
    """What the registry records of one version's evaluation."""

    model_config = ConfigDict(frozen=True)

    version: str
    accuracy: float | None
    ci95: tuple[float, float] | None
    test_set: str | None
    rolled_back: str | None = None

    def describe(self) -> str:
        """``v3: pooled accuracy 0.4500 [0.4000, 0.5000] on test set aaaaaaaaaaaa``."""
        if self.accuracy is None:
            return f"v{self.version}: no recorded pooled accuracy (never evaluated)"
        ci = "" if self.ci95 is None else f" [{self.ci95[0]:.4f}, {self.ci95[1]:.4f}]"
        test_set = "an unrecorded test set" if self.test_set is None else f"test set {self.test_set[:12]}"
        return f"v{self.version}: pooled accuracy {self.accuracy:.4f}{ci} on {test_set}"


class Comparison(BaseModel):
    """A version against the current champion, by the automatic promotion rule (:func:`decide`)."""

    model_config = ConfigDict(frozen=True)

    candidate: VersionScore
    champion: VersionScore | None
    margin: float
    improving: bool
    verdict: str

    @property
    def gain(self) -> float | None:
        """Candidate minus champion pooled accuracy, when both were scored on the same test set."""
        if self.champion is None or self.candidate.accuracy is None or self.champion.accuracy is None:
            return None
        if self.candidate.test_set is None or self.candidate.test_set != self.champion.test_set:
            return None
        return self.candidate.accuracy - self.champion.accuracy

    def render(self) -> str:
        """A few lines for the terminal: both versions, the gain against the margin, the verdict."""
        lines = [f"candidate {self.candidate.describe()}"]
        if self.candidate.rolled_back:
            lines.append(f"  (rolled back: {self.candidate.rolled_back})")
        lines.append("champion  none" if self.champion is None else f"champion  {self.champion.describe()}")
        gain = "not comparable" if self.gain is None else f"{self.gain:+.4f}"
        lines.append(f"gain {gain} (required margin {self.margin:.4f}): {self.verdict}")
        return "\n".join(lines)


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


def _float_tag(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, ValueError):
        return None


def _ci95_tag(tags: dict[str, str]) -> tuple[float, float] | None:
    try:
        low, high = json.loads(tags[CI95_TAG])
        return float(low), float(high)
    except (KeyError, ValueError, TypeError):
        return None


def _rolled_back(tags: dict[str, str]) -> str | None:
    """Why the version was rolled back, or ``None``; versions rolled back before the sticky tag keep their decision."""
    if tags.get(ROLLED_BACK_TAG):
        return tags[ROLLED_BACK_TAG]
    if tags.get(DECISION_TAG) == "rolled_back":
        return tags.get(REASON_TAG) or "rolled back"
    return None


def version_score(version: Any) -> VersionScore:
    """What the registry records of a model version's evaluation (its tags, read)."""
    tags = dict(version.tags)
    return VersionScore(
        version=str(version.version),
        accuracy=_float_tag(tags, ACCURACY_TAG),
        ci95=_ci95_tag(tags),
        test_set=tags.get(TEST_SET_TAG),
        rolled_back=_rolled_back(tags),
    )
