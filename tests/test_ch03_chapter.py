"""Chapter 3's claim checks and quiz: verdicts follow from package numbers, keys are computed."""

from __future__ import annotations

import pytest

from longctx_lab.claim_sets import ch03_sliding_window_sparse as article
from longctx_lab.claims import ClaimCheck
from longctx_lab.quiz import NumericQuestion, check_answer
from longctx_lab.quizzes.ch03_sliding_window_sparse import QUIZ


def test_claims_have_the_expected_verdicts():
    checks = article.claims()
    assert all(isinstance(c, ClaimCheck) for c in checks)

    def verdict(prefix):
        (match,) = [c for c in checks if c.claim.startswith(prefix)]
        return match.verdict

    # the article's receptive-field numbers follow Mistral's own W + 1-key convention (tests/test_claims.py)
    assert verdict("Mistral 7B: receptive field = L x w") == "correct"
    assert verdict("After layer 1, token 50,000") == "correct"
    assert verdict("...and that is Mistral 7B's rolling KV cache") == "wrong"
    assert verdict("...the saving a decoder LM (causal)") == "wrong"
    assert verdict("All successful long-context models") == "wrong"
    assert verdict("Two axial passes") == "correct"
    assert verdict("200K^2 = 40B") == "correct"
    assert sum(c.verdict == "wrong" for c in checks) >= 4


def test_rolling_tables_differ_by_the_kv_head_ratio():
    tables = article.rolling_tables()
    (a, art), (b, real) = tables.items()
    assert "32" in a and "8" in b
    for x, y in zip(art, real, strict=True):
        assert x["rolling_bytes"] == 4 * y["rolling_bytes"] and x["full_bytes"] == 4 * y["full_bytes"]
        assert x["saved"] == y["saved"]


def test_effective_range_demo():
    demo = article.mistral_effective_range_demo(window=8, layers=4)
    assert demo["span"] == demo["measured_support"] == 4 * 7 + 1
    assert demo["range_90"] < demo["span"]


def test_tiled_reduction_is_smaller_than_exact():
    r = article.tiled_reduction(n=2048, w=256, block=64)
    assert 1 < r["tiled"] < r["exact"]


def test_quiz_keys():
    assert len(QUIZ.questions) >= 5
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    answers = [q.answer for q in numeric]
    assert answers[:3] == [58, 131_041, 1808]
    assert check_answer(numeric[0], 58).correct and not check_answer(numeric[0], 64).correct
    assert numeric[5].answer == 2
    # Mistral 7B rolling cache, by hand: K and V x 32 layers x 8 KV heads x 128 dims x 4,096 slots x 2 bytes
    assert numeric[3].answer == pytest.approx(2 * 32 * 8 * 128 * 4096 * 2 / 1e9, rel=1e-12)
    # causal attention over causal window at n = 200,000, w = 512, by hand
    n, w = 200_000, 512
    assert numeric[4].answer == pytest.approx((n * (n + 1) / 2) / (n * w - w * (w - 1) / 2), rel=1e-12)
    assert 195 < numeric[4].answer < 196


def test_rolling_claims_explanations_carry_the_numbers():
    """The explanations' numbers are computed: 32 / 8 KV heads = 4x, and 4,096 of 1,048,576 tokens kept."""
    by_claim = {c.claim: c for c in article.rolling_buffer_claims()}
    assert "0.537 GB, 4x smaller" in by_claim["...and that is Mistral 7B's rolling KV cache"].explanation
    saved = by_claim["At 1M tokens the rolling buffer saves 100% of KV-cache memory"]
    assert f"{100 * (1 - 4096 / 1_048_576):.1f}% (4,096 of 1,048,576 tokens" in saved.explanation
