"""Helpers the claim-verdict tests share (tests/test_claims.py and tests/chapters/)."""

from __future__ import annotations

import re


def claim_value(text: str) -> float:
    """The number at the start of a ``computed``/``stated`` cell ("5,120 GB" -> 5120.0)."""
    m = re.match(r"\s*([\d,]*\.?\d+(?:e[+-]?\d+)?)", text)
    assert m, text
    return float(m[1].replace(",", ""))


def one_claim(checks, words: str):
    """The one check whose claim contains ``words`` (fails when none or several do)."""
    found = [c for c in checks if words in c.claim]
    assert len(found) == 1, (words, [c.claim for c in found])
    return found[0]


def assert_quiz_keys(quiz) -> None:
    """Every question of ``quiz`` accepts its key and refuses a wrong answer (another option; a number off by
    half again plus one)."""
    from longctx_lab.course.quiz import ChoiceQuestion, check_answer

    for q in quiz.questions:
        if isinstance(q, ChoiceQuestion):
            assert check_answer(q, min(q.correct_indices)).correct
            assert not check_answer(q, max(set(range(len(q.options))) - q.correct_indices)).correct
        else:
            assert check_answer(q, q.answer).correct and not check_answer(q, q.answer * 1.5 + 1).correct


def assert_claims_render(checks, *, minimum: int) -> None:
    """At least ``minimum`` checks, shown folded with a link to the tolerance policy, each explained and computed;
    a "wrong" verdict decided by a rule shows its comparison."""
    from longctx_lab.course.claims import POLICY_PLACE, ClaimCheck, show_claims

    assert all(isinstance(c, ClaimCheck) for c in checks) and len(checks) >= minimum
    assert POLICY_PLACE in str(show_claims(checks))
    assert show_claims(checks)._repr_html_().startswith("<details")
    for c in checks:
        assert c.explanation.strip() and c.computed.strip()
        if c.verdict == "wrong" and c.rule:
            assert c.comparison
