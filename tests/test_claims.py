"""Claim checks: verdicts follow from numbers; the chapter-1 claims the issue names are found wrong."""

import pytest

from longctx_lab.claim_sets import ch01_quadratic_wall as ch01
from longctx_lab.claims import SEED_ARCHITECTURE, check_number, check_statement, show_claims


def test_verdict_is_computed():
    assert check_number("x", stated=100, computed=101, source=SEED_ARCHITECTURE).verdict == "correct"
    wrong = check_number("x", stated=48.83, computed=488.3, source=SEED_ARCHITECTURE, explanation="10x")
    assert wrong.verdict == "wrong" and wrong.ratio == pytest.approx(0.1)
    with pytest.raises(ValueError, match="explanation must say why"):
        check_number("x", stated=1, computed=2, source=SEED_ARCHITECTURE)
    with pytest.raises(ValueError, match="verdict must be one of"):
        check_statement("x", verdict="maybe", evidence="e", source="s", explanation="x")
    with pytest.raises(ValueError, match="evidence must be a non-empty"):
        check_statement("x", verdict="wrong", evidence=" ", source="s", explanation="x")
    with pytest.raises(TypeError, match="ClaimCheck"):
        show_claims(["not a claim"])


def _by_words(checks, words):
    found = [c for c in checks if words in c.claim]
    assert len(found) == 1, words
    return found[0]


def test_chapter1_wrong_claims_are_named_wrong():
    checks = ch01.claims()
    kv = _by_words(checks, "48.83")
    assert kv.verdict == "wrong" and kv.ratio == pytest.approx(0.1, rel=0.01)  # off by 10x
    flops = _by_words(checks, "4.1e20")
    assert flops.verdict == "wrong" and flops.ratio == pytest.approx(1000, rel=0.01)  # off by 1000x
    assert _by_words(checks, "on-chip slower than HBM").verdict == "wrong"
    assert _by_words(checks, "Time-to-first-token scales linearly").verdict == "wrong"
    assert _by_words(checks, "about 335 GB").verdict == "correct"
    assert _by_words(checks, "about 42 GB").verdict == "correct"
    table = show_claims(checks)
    assert "<table>" in table._repr_html_() and "WRONG" in str(table)
