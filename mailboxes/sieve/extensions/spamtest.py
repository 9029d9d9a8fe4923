"""spamtest, spamtestplus and virustest (RFC 5235), fed by the context's scores."""

from __future__ import annotations

from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test


def _spamtest(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5235: "0" untested, then 1..10 (or 0..100 with :percent) from the score."""
    keys = [run.string(frame, node.positional[0])]
    score = run.context.spam_score
    if score is None:
        value = "0"
    else:
        percent = _percent(score, run.context.spam_max)
        value = str(percent) if ":percent" in node.tagged else str(1 + percent * 9 // 100)
    return run.match(frame, node, [value], keys)


def _percent(score: float, top: float) -> int:
    """The score as a whole percentage of `top`, rounded down (Pigeonhole's scale)."""
    return int(min(max(score / top, 0.0), 1.0) * 100) if top > 0 else 100


def _virustest(run: Run, frame: Frame, node: Test) -> bool:
    keys = [run.string(frame, node.positional[0])]
    score, top = run.context.virus_score, run.context.virus_max
    if score is None:
        value = "0"
    else:
        value = str(1 + _percent(score, top) * 4 // 100)
    return run.match(frame, node, [value], keys)


TESTS = {"spamtest": _spamtest, "virustest": _virustest}
