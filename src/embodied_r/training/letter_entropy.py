"""An entropy bonus on the answer letter alone (not in the paper; ``grpo.letter_entropy_coef``, paper 0).

On a small LM, GRPO on multiple-choice questions ends on one letter: once every completion of a group gives the
same letter, the group is all right or all wrong, its advantages are 0, and nothing moves the policy off it again
(README, Results). TRL's entropy bonus acts on every completion token (or on the highest-entropy ones), so a bonus
strong enough to keep the letter stochastic also spreads the ``<think>`` and the tags and breaks the format.

This bonus acts on one distribution per completion: the policy's probabilities, at the token that writes the
answer letter, of the tokens that would write each of the question's letters instead, renormalised over them. Its
entropy (nats, at most ``ln(number of options)``) is added to the objective with ``coef``; nothing else in the
vocabulary gains mass, so the format is untouched. Completions without an ``<answer>`` letter get no bonus.

:class:`LetterLocator` finds, for each completion, the token that writes the letter after the last ``<answer>``
and the token ids of its variants (``" B"`` → ``" A"``, ``" C"``, …; a token that merges the letter with other
text, such as ``">B"``, gets ``">A"``, ``">C"`` when the vocabulary has them, else no bonus for that completion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from embodied_r.vocabulary import LETTERS

#: Width of the candidate table: one column per possible option letter (A–H), -1 where a question has fewer.
WIDTH = len(LETTERS)
TAG = "<answer>"

__all__ = ["TAG", "WIDTH", "LetterLocator", "letter_entropies"]


class LetterLocator:
    """Where each completion writes its answer letter, and which tokens would write the other letters there."""

    def __init__(self, tokenizer: Any, tag: str = TAG) -> None:
        self.tokenizer = tokenizer
        self.tag = tag
        self._pieces: dict[int, str] = {}
        self._single: dict[str, int | None] = {}

    def piece(self, token_id: int) -> str:
        """The text of one token."""
        if token_id not in self._pieces:
            self._pieces[token_id] = self.tokenizer.decode(
                [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        return self._pieces[token_id]

    def single_token(self, text: str) -> int | None:
        """The id of the one token that encodes ``text``, or None when it takes several."""
        if text not in self._single:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            self._single[text] = ids[0] if len(ids) == 1 else None
        return self._single[text]

    def locate(self, completion_ids: Sequence[int], choices: Sequence[str]) -> tuple[int, list[int]] | None:
        """(index of the token writing the answer letter, token id writing each of ``choices`` there) or None.

        None when the completion has no ``<answer>`` followed by one of ``choices``, or when some choice has no
        single token to write it at that place (the distribution over the choices would be incomplete).
        """
        pieces = [self.piece(int(t)) for t in completion_ids]
        text = "".join(pieces)
        start = text.rfind(self.tag)
        if start < 0:
            return None
        at = start + len(self.tag)
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text) or text[at] not in choices:
            return None
        index, offset = 0, 0
        while offset + len(pieces[index]) <= at:  # the token whose text covers the letter
            offset += len(pieces[index])
            index += 1
        piece, inner = pieces[index], at - offset
        candidates = [self.single_token(piece[:inner] + letter + piece[inner + 1 :]) for letter in choices]
        if any(c is None for c in candidates) or candidates[list(choices).index(text[at])] != int(
            completion_ids[index]
        ):
            return None  # the vocabulary cannot write every letter here, or this token is not how it writes one
        return index, [int(c) for c in candidates]  # type: ignore[arg-type]

    def slots(
        self, completion_ids: torch.Tensor, completion_mask: torch.Tensor, choices: Sequence[Sequence[str]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch form of :meth:`locate`: positions ``(rows,)`` (-1 = none) and candidates ``(rows, WIDTH)`` (-1 pad)."""
        rows = completion_ids.size(0)
        positions = torch.full((rows,), -1, dtype=torch.long)
        candidates = torch.full((rows, WIDTH), -1, dtype=torch.long)
        for row in range(rows):
            ids = completion_ids[row][completion_mask[row].bool()].tolist()
            found = self.locate(ids, [str(c) for c in choices[row]]) if choices[row] else None
            if found is not None:
                positions[row] = found[0]
                candidates[row, : len(found[1])] = torch.tensor(found[1])
        return positions.to(completion_ids.device), candidates.to(completion_ids.device)


def letter_entropies(
    logits: torch.Tensor, positions: torch.Tensor, candidates: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy (nats) of each row's letter distribution, and the rows that have one.

    ``logits`` ``(rows, completion_len, vocab)`` predict each completion token (as the policy's log-probabilities
    are computed); ``positions`` and ``candidates`` come from :meth:`LetterLocator.slots`. The distribution is the
    temperature-scaled softmax restricted to the candidate tokens and renormalised. Returns ``(entropies, rows)``
    for the rows with a slot only (differentiable through ``logits``).

    >>> logits = torch.zeros(2, 3, 5); logits[0, 1, 2] = 50.0
    >>> h, rows = letter_entropies(logits, torch.tensor([1, -1]), torch.tensor([[2, 3, -1], [-1, -1, -1]]))
    >>> rows.tolist(), round(h.item(), 6)
    ([0], 0.0)
    >>> h, _ = letter_entropies(torch.zeros(1, 1, 5), torch.tensor([0]), torch.tensor([[0, 1, 2, 3]]))
    >>> round(h.item(), 4) == round(torch.log(torch.tensor(4.0)).item(), 4)
    True
    """
    rows = (positions >= 0).nonzero().flatten()
    if rows.numel() == 0:
        return logits.new_zeros(0), rows
    at = logits[rows, positions[rows]].float() / temperature  # (n, vocab)
    cands = candidates[rows]
    valid = cands >= 0
    # The softmax over the candidates alone is the full softmax renormalised over them (its normaliser cancels).
    # A finite floor for the missing ones, not -inf: exp underflows to exactly 0 and no 0 × inf makes a NaN gradient.
    picked = torch.where(valid, at.gather(-1, cands.clamp(min=0)), torch.full_like(at[:, :1], -1e4))
    renormalised = torch.log_softmax(picked, dim=-1)
    terms = torch.where(valid, renormalised.exp() * renormalised, torch.zeros_like(renormalised))
    return -terms.sum(-1), rows
