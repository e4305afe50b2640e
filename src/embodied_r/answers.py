"""Reading answers out of LM completions — the one place for the answer regexes (reference §5, §6).

Shared by the GRPO rewards (:mod:`embodied_r.rewards`) and by evaluation, so a completion is scored the
same way in training and in the report.

Four ways to read an option letter (``mode``):

``"answer_tag"`` (default, the saner reading)
    The letter inside the **last** complete ``<answer>…</answer>`` block. The last one, because it is the
    model's final word; the strict format reward separately gives 0 to completions with more than one block,
    so hedging with several blocks never pays. Inside the block, after Unicode NFKC normalisation (full-width
    ``Ｂ`` → ``B``) and stripping, these are accepted::

        B   (B)   [B]   B.   B)   B:   B. some text   (B) some text   Answer: B   The answer is B.   Option (B)

    and, as lmms-eval's VSI-Bench scoring compares case-insensitively, a **lone** letter in either case::

        b   (b)   [b]   b.   b)

    and these are **not** (→ ``None``): a lower-case letter with more text (``b. the chair``, ``the answer is b``
    — in free text a lower-case ``a`` is too often the article), a letter followed by text without a delimiter
    (``B red chair`` — indistinguishable from ``A red chair``), several letters (``A or B``, ``A/B``, ``A, B``,
    ``(A) or (B)``), an empty block, an unclosed block (a truncated completion), and a letter that is not
    among ``choices``.

``"official_scan"`` (the official code's quirk, for reproducing it)
    The official reward plugins (``ChoiceAccuracy.normalize_answer`` in
    ``train/reward/choice_accuracy_reward.py`` of the Embodied-R.code lineage, e.g.
    wannabeyourfriend/DRL-Project-Embodied-Reasoning; the same function in
    B1ueDrops/Embodied-R.code ``train/consistency_reward.py``) scan the **whole** completion, case-insensitively,
    with four patterns tried in order: ``$\\boxed{X}$`` (last match), ``answer X`` (first match),
    ``X.`` (last match), a stand-alone ``X`` (last match), letters A–H. So a letter inside ``<think>`` can win
    over ``<answer>`` (``<think>… position B. …</think><answer>C</answer>`` reads ``B``), and the article
    ``a`` reads as ``A``. Reproduced verbatim, including ``re.finditer``'s non-overlapping matches; the only
    change is that a letter outside ``choices`` gives ``None`` instead of the official raw text, which scores
    the same (it can never equal the ground truth).

``"answer_text"`` (not in the paper; for small LMs, see ``rewards.accuracy_mode``)
    As ``"answer_tag"``, and an answer that is not a letter may instead be the **text of one option**, exactly
    (``<answer>to the left</answer>`` for ``C. to the left``; case, surrounding spaces, a final full stop and
    NFKC forms aside). Text matching two options, or none, reads as ``None``. A small LM copies an option's text
    far more readily than it looks its letter up; the letter is the same either way, so scores stay comparable.

``"bare"``
    The whole text is the answer content, read like the inside of an ``<answer>`` block except that a lone
    lower-case letter is free text here, so refused (if the text does hold an ``<answer>`` block, that is read
    instead, as in ``"answer_tag"``). Used for the consistency judge's one-letter replies.

>>> extract_answer("<think>B looks close.</think><answer>(C)</answer>")
'C'
>>> extract_answer("<think>It is B. No, wait.</think><answer>C</answer>", mode="official_scan")
'B'
>>> extract_answer("<answer>A or B</answer>") is None
True
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

from embodied_r.data.records import parse_choices

__all__ = [
    "ANSWER_BLOCK_RE",
    "DEFAULT_CHOICES",
    "MRA_TOLERANCES",
    "THINK_BLOCK_RE",
    "AccuracyMode",
    "AnswerMode",
    "answer_block",
    "extract_answer",
    "extract_number",
    "extract_think",
    "mean_relative_accuracy",
    "normalize_text",
]

AnswerMode = Literal["answer_tag", "answer_text", "official_scan", "bare"]
#: The modes that read a policy's completion (``bare`` reads a judge's one-letter reply).
AccuracyMode = Literal["answer_tag", "answer_text", "official_scan"]

#: Four-option multiple choice, the common case in both benchmarks.
DEFAULT_CHOICES: tuple[str, ...] = ("A", "B", "C", "D")

#: One ``<think>`` block; content may span lines. A nested opening tag ends the candidate, so
#: ``<think><think>x</think>`` reads the innermost block.
THINK_BLOCK_RE = re.compile(r"<think>((?:(?!<think>).)*?)</think>", re.DOTALL)
#: One ``<answer>`` block, innermost if nested.
ANSWER_BLOCK_RE = re.compile(r"<answer>((?:(?!<answer>).)*?)</answer>", re.DOTALL)

# Inside an answer block: an optional "the (final|correct) answer is:" / "option" / "choice" prefix
# (case-insensitive), then the letter, bare or in brackets (upper case only), then the rest.
_LETTER_CONTENT_RE = re.compile(
    r"^(?i:(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*:?\s*)?"
    r"(?:\((?P<paren>[A-Z])\)|\[(?P<bracket>[A-Z])\]|(?P<bare>[A-Z])(?![A-Za-z0-9]))"
    r"(?P<rest>.*)$",
    re.DOTALL,
)
# The whole content is one letter, in either case (lmms-eval compares case-insensitively): "b", "(b)", "b.".
_LONE_LETTER_RE = re.compile(r"^(?:\((?P<paren>[A-Za-z])\)|\[(?P<bracket>[A-Za-z])\]|(?P<bare>[A-Za-z])[.):]?)$")
# After a bare letter the rest must be empty or start with a delimiter ("B.", "B) text", "B: text", "B - text").
_DELIMITER_RE = re.compile(r"^\s*(?:[.):\-–—]|$)")
# A second option letter in the rest makes the answer ambiguous: "(A) or (B)", "A. or B." (checked against
# the choices, so "C. turn left and I stop" stays C).
_SECOND_OPTION_RE = re.compile(r"(?i:\b(?:or|and)\b)\s*[(\[]?([A-Z])(?![A-Za-z0-9])")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

# The official plugins' patterns, verbatim (all applied with re.IGNORECASE).
_OFFICIAL_BOXED_RE = re.compile(r"\$\\boxed\{([A-H])\}\$", re.IGNORECASE)
_OFFICIAL_ANSWER_RE = re.compile(r"answer\s+([A-H])\.?", re.IGNORECASE)
_OFFICIAL_DOT_RE = re.compile(r"(?:^|[^A-Za-z])([A-H])\s*\.", re.IGNORECASE)
_OFFICIAL_SIMPLE_RE = re.compile(r"(?:^|[^A-Za-z])([A-H])(?:$|[^A-Za-z])", re.IGNORECASE)

# fmt: off
_NUMBER_WORD_LIST = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                     "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                     "twenty")
# fmt: on
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])|(?<![\w.])[-+]?\.\d+")
_NUMBER_WORDS = {word: float(i) for i, word in enumerate(_NUMBER_WORD_LIST)}
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)

#: MRA tolerances 1 − θ for θ ∈ {0.50, 0.55, …, 0.95}, written exactly (0.50, 0.45, …, 0.05).
MRA_TOLERANCES: tuple[float, ...] = tuple((50 - 5 * k) / 100 for k in range(10))
# A relative error equal to a tolerance counts as within it; floating point must not decide that.
_MRA_EPS = 1e-9


def normalize_text(text: str) -> str:
    """NFKC-normalise ``text`` and drop zero-width characters (full-width ``（Ｂ）`` → ``(B)``)."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


def answer_block(text: str) -> str | None:
    """The content of the last complete ``<answer>…</answer>`` block, stripped; ``None`` if there is none."""
    blocks = ANSWER_BLOCK_RE.findall(text)
    return blocks[-1].strip() if blocks else None


def extract_think(text: str) -> str | None:
    """The content of the first complete ``<think>…</think>`` block, stripped.

    The first block, as the official consistency reward reads it (``re.search``). ``None`` when there is no
    complete block or it holds only whitespace — the consistency judge has nothing to read then.

    >>> extract_think("<think> left of the tree </think><answer>A</answer>")
    'left of the tree'
    """
    match = THINK_BLOCK_RE.search(text)
    if match is None:
        return None
    content = match.group(1).strip()
    return content or None


def _letter_from_content(content: str, choices: frozenset[str], *, in_tag: bool) -> str | None:
    """Read one option letter from an answer's content (see the module docstring for the rules).

    ``in_tag``: the content is an ``<answer>`` block's, where a lone letter counts in either case.
    """
    content = normalize_text(content).strip()
    if in_tag:
        lone = _LONE_LETTER_RE.match(content)
        if lone is not None:
            letter = (lone.group("paren") or lone.group("bracket") or lone.group("bare")).upper()
            return letter if letter in choices else None
    match = _LETTER_CONTENT_RE.match(content)
    if match is None:
        return None
    rest = match.group("rest")
    if match.group("bare") is not None and not _DELIMITER_RE.match(rest):
        return None
    if any(other in choices for other in _SECOND_OPTION_RE.findall(rest)):
        return None
    letter = match.group("paren") or match.group("bracket") or match.group("bare")
    return letter if letter in choices else None


def _option_text_key(text: str) -> str:
    return " ".join(normalize_text(text).casefold().split()).rstrip(".").strip()


def _letter_from_option_text(content: str, question: str, choices: frozenset[str]) -> str | None:
    """The one option of ``question`` whose text ``content`` is (``None`` for none or several)."""
    key = _option_text_key(content)
    found = [c for c, t in parse_choices(question).items() if c in choices and _option_text_key(t) == key]
    return found[0] if len(found) == 1 else None


def _official_scan(text: str) -> str | None:
    """The official ``normalize_answer``: scan the whole completion with four patterns in turn."""
    text = text.strip()
    for pattern, pick_last in (
        (_OFFICIAL_BOXED_RE, True),
        (_OFFICIAL_ANSWER_RE, False),  # the official code takes the FIRST "answer X"
        (_OFFICIAL_DOT_RE, True),
        (_OFFICIAL_SIMPLE_RE, True),
    ):
        matches = list(pattern.finditer(text))
        if matches:
            return (matches[-1] if pick_last else matches[0]).group(1).upper()
    return None


def extract_answer(
    text: str,
    choices: Iterable[str] = DEFAULT_CHOICES,
    mode: AnswerMode = "answer_tag",
    question: str | None = None,
) -> str | None:
    """The option letter a completion answers, or ``None`` if it answers none of ``choices`` unambiguously.

    Args:
        text: The completion (plain text).
        choices: The option letters of the question, upper case (e.g. ``["A", "B", "C", "D"]``). Empty for a
            numeric question — then the answer is ``None``; use :func:`extract_number`.
        mode: ``"answer_tag"`` (default), ``"answer_text"``, ``"official_scan"`` or ``"bare"``; see the module
            docstring.
        question: The question with its lettered option lines; ``"answer_text"`` reads option texts from it.

    >>> extract_answer("<think>…</think><answer>B. the red chair</answer>")
    'B'
    >>> extract_answer("<think>…</think><answer>E</answer>") is None  # E is not among A–D
    True
    >>> question = "Where is it?\\nA. ahead\\nB. behind\\nC. to the left"
    >>> extract_answer("<answer>To the left.</answer>", "ABC", "answer_text", question=question)
    'C'
    """
    allowed = frozenset(str(c).strip() for c in choices)
    if not allowed:
        return None
    if mode == "official_scan":
        letter = _official_scan(text)
        return letter if letter in allowed else None
    if mode in ("answer_tag", "answer_text"):
        content = answer_block(text)
        if content is None:
            return None
        letter = _letter_from_content(content, allowed, in_tag=True)
        if letter is None and mode == "answer_text":
            if question is None:
                raise ValueError("answer mode 'answer_text' needs the question (its option texts)")
            letter = _letter_from_option_text(content, question, allowed)
        return letter
    if mode == "bare":
        content = answer_block(text)
        if content is None:  # a judge's reply without tags: free text, upper-case letters only
            return _letter_from_content(text, allowed, in_tag=False)
        return _letter_from_content(content, allowed, in_tag=True)
    raise ValueError(f"unknown answer mode {mode!r}: expected 'answer_tag', 'answer_text', 'official_scan' or 'bare'")


def extract_number(text: str, mode: Literal["answer_tag", "bare"] = "answer_tag") -> float | None:
    """The first number in the answer of a numeric question (counts, sizes, distances), or ``None``.

    ``mode="answer_tag"`` reads the last ``<answer>`` block (``None`` without one); ``"bare"`` reads the
    whole text. Digits (``3``, ``-2.5``, ``.5``, ``1,250``) and the words zero–twenty (counting answers)
    are understood; with several numbers the first wins (``"3.5 m, maybe 4"`` → 3.5).

    >>> extract_number("<think>two chairs and one table</think><answer>about 2.5 meters</answer>")
    2.5
    >>> extract_number("<answer>three</answer>")
    3.0
    """
    if mode == "answer_tag":
        content = answer_block(text)
        if content is None:
            return None
    elif mode == "bare":
        content = text
    else:
        raise ValueError(f"unknown number mode {mode!r}: expected 'answer_tag' or 'bare'")
    content = normalize_text(content)
    digits = _NUMBER_RE.search(content)
    word = _NUMBER_WORD_RE.search(content)
    if digits is not None and (word is None or digits.start() < word.start()):
        value = float(digits.group(0).replace(",", ""))
        return value if math.isfinite(value) else None
    if word is not None:
        return _NUMBER_WORDS[word.group(1).lower()]
    return None


def mean_relative_accuracy(pred: float | None, gt: float) -> float:
    """MRA of a numeric answer (VSI-Bench): mean over θ ∈ {0.50, 0.55, …, 0.95} of 1[|ŷ − y| / |y| ≤ 1 − θ].

    A missing or non-finite prediction scores 0. A ground truth of 0 has no relative error: the score is 1
    for an exact 0 and 0 otherwise. A relative error exactly on a tolerance counts as within it.

    >>> mean_relative_accuracy(10.0, 10.0)
    1.0
    >>> mean_relative_accuracy(12.0, 10.0)  # 20% off: within the tolerances 0.50 … 0.20
    0.7
    >>> mean_relative_accuracy(None, 3.0)
    0.0
    """
    if pred is None or not math.isfinite(pred):
        return 0.0
    if not math.isfinite(gt):
        raise ValueError(f"ground truth must be finite, got {gt!r}")
    if gt == 0:
        return 1.0 if pred == 0 else 0.0
    relative_error = abs(pred - gt) / abs(gt)
    hits = sum(relative_error <= tol + _MRA_EPS for tol in MRA_TOLERANCES)
    return hits / len(MRA_TOLERANCES)
