"""The per-mailbox statistical classifier: Robinson's token probabilities combined with
Fisher's chi-square method, as SpamBayes does (Gary Robinson, "A Statistical Approach to the
Spam Problem", Linux Journal 2003). Pure functions over counts; the counts live in
delivery.models.SpamToken (delivery/spam/selectors.py reads them).

Memory: the state is one row per (mailbox, hashed token) with two counts; nothing is held
in memory between messages. A message is scored from the rows of its own tokens only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UNKNOWN_PROBABILITY = 0.5  # Robinson's x: the belief in a token never seen
STRENGTH = 0.45  # Robinson's s: how much weight x has against the token's own counts
MIN_DISTANCE = 0.1  # tokens closer than this to 0.5 are not clues
MAX_CLUES = 150
# The classifier speaks only once it has seen this many messages of each class.
MIN_SPAM = 2
MIN_HAM = 1


@dataclass(frozen=True)
class Totals:
    spam: int
    ham: int

    @property
    def ready(self) -> bool:
        return self.spam >= MIN_SPAM and self.ham >= MIN_HAM


def token_probability(spam: int, ham: int, totals: Totals) -> float:
    """Robinson's f(w): the token's spam ratio, pulled towards x when it was seen rarely."""
    spam_ratio = spam / totals.spam if totals.spam else 0.0
    ham_ratio = ham / totals.ham if totals.ham else 0.0
    if spam_ratio + ham_ratio == 0:
        return UNKNOWN_PROBABILITY
    probability = spam_ratio / (spam_ratio + ham_ratio)
    seen = spam + ham
    return (STRENGTH * UNKNOWN_PROBABILITY + seen * probability) / (STRENGTH + seen)


def _chi2q(chi2: float, degrees: int) -> float:
    """P(X >= chi2) for a chi-square variable of even `degrees` of freedom."""
    m = chi2 / 2.0
    term = total = math.exp(-m)
    for i in range(1, degrees // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def spam_probability(counts: list[tuple[int, int]], totals: Totals) -> tuple[float, int]:
    """Fisher-combined spam probability (0 ham .. 1 spam) of a message whose tokens have
    these (spam, ham) counts, and how many clues decided it."""
    clues = []
    for spam, ham in counts:
        probability = token_probability(spam, ham, totals)
        distance = abs(probability - 0.5)
        if distance >= MIN_DISTANCE:
            clues.append((distance, probability))
    if not clues:
        return 0.5, 0
    clues.sort(reverse=True)
    clues = clues[:MAX_CLUES]
    ln_spam = ln_ham = 0.0
    for _, probability in clues:
        probability = min(max(probability, 1e-6), 1 - 1e-6)
        ln_ham += math.log(probability)
        ln_spam += math.log(1.0 - probability)
    n = len(clues)
    spam_evidence = 1.0 - _chi2q(-2.0 * ln_spam, 2 * n)
    ham_evidence = 1.0 - _chi2q(-2.0 * ln_ham, 2 * n)
    return (spam_evidence - ham_evidence + 1.0) / 2.0, n
