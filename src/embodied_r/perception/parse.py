"""Parse a later-frame VLM answer into (action, observation) — reference §3.

A later-frame answer has three numbered points (see :func:`embodied_r.perception.prompts.later_frame_prompt`).
Rules, in order:

* The answer is split at line-leading point markers ``1.`` ``2.`` ``3.`` (also ``1)``, ``**1.**``, ``### 1.``,
  ``- 1.``); a one-line answer ``1. ... 2. ... 3. ...`` is split at the inline markers. Points 1 and 2 are
  required, point 3 is optional (the official code requires all three; a missing point 3 is common and harmless).
* The action is read from point 1 only: case, markdown and a leading label ("Action:", "Action performed:")
  are ignored, and the ten :data:`~embodied_r.vocabulary.ACTIONS` are matched as words, together with
  unambiguous synonyms and verb forms — "turn/pan/yaw left" → "rotate left", "move/go/fly up", "ascend" →
  "move upward", "look/pitch up" → "tilt upward", "go/move ahead", "go straight" → "move forward",
  "moved backward"/"move back" → "move backward", "strafe left" → "move left". Point 1 must name exactly one
  action; two different ones ("rotate left and move forward") are ambiguous.
* observation = point 2 and point 3 joined by a space (as the official ``split_points``).
* When the points cannot be split, or point 1 names no single action, the action is ``None`` and the whole
  answer (stripped) is the observation, so nothing the VLM said is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embodied_r.vocabulary import ACTIONS

_MARK = r"(?:[#>*_\-\s]|\*\*)*"  # markdown before a point number: "### ", "**", "- ", "> "
_POINT_RE = re.compile(rf"^{_MARK}(?:point\s*)?([123])\s*[\.\):](?!\d)\**", re.IGNORECASE | re.MULTILINE)
_INLINE_RE = re.compile(
    r"(?:^|\s)\**1[\.\)]\**\s*(?P<p1>.*?)\s\**2[\.\)]\**\s*(?P<p2>.*?)(?:\s\**3[\.\)]\**\s*(?P<p3>.*))?$", re.DOTALL
)
_LABEL_RE = re.compile(
    r"^\s*(?:the\s+)?(?:action(?:\s+(?:performed|taken))?|determined action|movement|camera (?:action|motion))"
    r"(?:\s+(?:is|was))?\s*[:\-–]?\s*",
    re.IGNORECASE,
)

_MOVE = r"(?:move|moved|moves|moving|go|goes|went|going|step|stepped|steps|stepping|fly|flew|flies|flying|walk|walked|walks|walking|strafe|strafed|strafes|strafing|travel|travelled|traveled|shift|shifted)"  # noqa: E501
_TURN = r"(?:rotate|rotated|rotates|rotating|rotation|turn|turned|turns|turning|pan|panned|pans|panning|yaw|yawed|yaws|yawing)"  # noqa: E501
_TILT = r"(?:tilt|tilted|tilts|tilting|pitch|pitched|pitches|pitching|look|looked|looks|looking)"

#: (action, pattern) — the canonical names plus unambiguous synonyms; matched on lower-cased, de-marked text.
_ACTION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("move forward", rf"\b{_MOVE}\s+(?:forward|forwards|ahead|straight(?:\s+ahead)?)\b"),
    ("move backward", rf"\b{_MOVE}\s+(?:backward|backwards|back)\b|\bback(?:ed)?\s+up\b"),
    ("move left", rf"\b{_MOVE}\s+(?:to\s+the\s+)?(?:left|leftward|leftwards)\b"),
    ("move right", rf"\b{_MOVE}\s+(?:to\s+the\s+)?(?:right|rightward|rightwards)\b"),
    ("move upward", rf"\b{_MOVE}\s+(?:up|upward|upwards)\b|\b(?:ascend|ascended|ascends|ascending|rise|rises|rose)\b"),
    ("move downward", rf"\b{_MOVE}\s+(?:down|downward|downwards)\b|\b(?:descend|descended|descends|descending)\b"),
    ("rotate left", rf"\b{_TURN}\s+(?:to\s+the\s+)?(?:left|leftward|leftwards|counter-?clockwise)\b"),
    ("rotate right", rf"\b{_TURN}\s+(?:to\s+the\s+)?(?:right|rightward|rightwards|clockwise)\b"),
    ("tilt upward", rf"\b{_TILT}\s+(?:up|upward|upwards)\b"),
    ("tilt downward", rf"\b{_TILT}\s+(?:down|downward|downwards)\b"),
)
_COMPILED = tuple((action, re.compile(pattern)) for action, pattern in _ACTION_PATTERNS)
assert {a for a, _ in _ACTION_PATTERNS} == set(ACTIONS)


@dataclass(frozen=True)
class ParsedAnswer:
    """A later-frame answer: the action (one of ACTIONS, or None) and the observation text (points 2 + 3)."""

    action: str | None
    observation: str


def _clean(text: str) -> str:
    text = re.sub(r"[*_`#>\"“”]", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def normalize_action(text: str) -> str | None:
    """The one action named in ``text`` (point 1 of an answer), or ``None`` when none or several are named.

    >>> normalize_action("**Action:** Rotate left.")
    'rotate left'
    >>> normalize_action("The camera turned to the right") , normalize_action("rotate left, then move forward")
    ('rotate right', None)
    """
    cleaned = _LABEL_RE.sub("", _clean(text))
    found = {action for action, pattern in _COMPILED if pattern.search(cleaned)}
    return found.pop() if len(found) == 1 else None


def split_points(text: str) -> tuple[str, str, str | None] | None:
    """Points 1, 2 and 3 (or None) of a numbered answer; ``None`` when there is no ``1.`` … ``2.`` structure."""
    markers: dict[str, re.Match[str]] = {}
    for match in _POINT_RE.finditer(text):
        number = match.group(1)
        expected = str(len(markers) + 1)
        if number == expected:
            markers[number] = match
        if len(markers) == 3:
            break
    if "1" in markers and "2" in markers:
        m1, m2, m3 = markers["1"], markers["2"], markers.get("3")
        p1 = text[m1.end() : m2.start()]
        p2 = text[m2.end() : m3.start()] if m3 else text[m2.end() :]
        p3 = text[m3.end() :] if m3 else None
        return p1.strip(), p2.strip(), None if p3 is None else p3.strip()
    inline = _INLINE_RE.search(text.strip())
    if inline:
        p3 = inline.group("p3")
        return inline.group("p1").strip(), inline.group("p2").strip(), None if p3 is None else p3.strip()
    return None


def parse_answer(text: str) -> ParsedAnswer:
    """Parse a later-frame answer; unparsable → ``ParsedAnswer(None, whole text)``.

    >>> parse_answer("1. Move forward.\\n2. A red chair appears ahead-left.\\n3. The door is to the right.")
    ParsedAnswer(action='move forward', observation='A red chair appears ahead-left. The door is to the right.')
    >>> parse_answer("I cannot tell.")
    ParsedAnswer(action=None, observation='I cannot tell.')
    """
    whole = text.strip()
    points = split_points(whole)
    if points is None:
        return ParsedAnswer(None, whole)
    p1, p2, p3 = points
    action = normalize_action(p1)
    if action is None:
        return ParsedAnswer(None, whole)
    observation = " ".join(part for part in (p2, p3) if part)
    return ParsedAnswer(action, observation)
