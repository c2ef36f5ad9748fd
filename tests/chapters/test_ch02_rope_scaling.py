"""Chapter 2's quiz and article-claim checks: they build, their keys come from the package, verdicts hold."""

from __future__ import annotations

import math

import pytest
from claim_helpers import claim_value, one_claim

from longctx_lab import rope
from longctx_lab.course.claim_sets import ch02_rope_scaling as article
from longctx_lab.course.claim_sets import ch02_rope_scaling as ch02
from longctx_lab.course.claims import SEED_ARCHITECTURE
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Quiz, check_answer
from longctx_lab.course.quizzes.ch02_rope_scaling import QUIZ


def _llama31_bands_by_hand():
    """Llama 3.1 (d=128, base 5e5, original 8192, low 1, high 4): pairs kept / blended / divided, from the
    wavelengths 2 pi 500000^(2i/128) alone, without longctx_lab."""
    wl = [2 * math.pi * 500_000.0 ** (2 * i / 128) for i in range(64)]
    kept = sum(w < 8192 / 4 for w in wl)
    divided = sum(w > 8192 / 1 for w in wl)
    return kept, 64 - kept - divided, divided


def test_quiz_shape_and_numeric_keys():
    """Keys against numbers worked out here by hand (not by calling the function that computed the key)."""
    assert isinstance(QUIZ, Quiz) and len(QUIZ.questions) >= 5
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 3 and all(q.computed_by for q in numeric)
    answers = [q.answer for q in numeric]
    # NTK base for d=128, base 1e4, s=8: 1e4 * 8^(128/126) = 82,687.3...
    assert answers[1] == pytest.approx(10_000.0 * 8.0 ** (128 / 126)) and 82_680 < answers[1] < 82_690
    # YaRN logits multiplier at s=16: (0.1 ln 16 + 1)^2 = 1.6314...
    assert answers[2] == pytest.approx((0.1 * math.log(16) + 1) ** 2) and 1.631 < answers[2] < 1.632
    assert answers[0] == 18  # 4K context, d=128, base 1e4: see test_unseen below
    assert _llama31_bands_by_hand() == (29, 6, 29)
    assert answers[3] == 29  # Llama 3.1 pairs kept
    for q in QUIZ.questions:
        if isinstance(q, ChoiceQuestion):
            assert check_answer(q, sorted(q.correct_indices) if q.multiple else min(q.correct_indices)).correct
        else:
            assert check_answer(q, q.answer).correct and not check_answer(q, q.answer * 1.5).correct


def test_unseen_pairs_match_wavelengths():
    inv, _ = rope.default_rope(128)
    assert int((rope.wavelengths(inv) > 4096).sum()) == 18


def test_claims_build_with_expected_verdicts():
    checks = article.claims()
    verdicts = {c.claim[:30]: c.verdict for c in checks}
    assert len(checks) >= 8
    assert verdicts["theta_i = 1 / base^(2i/d) (ind"] == "misleading"
    assert verdicts["Interpolating the rotation fre"] == "correct"
    assert verdicts["YaRN temperature = 0.5"] == "wrong"
    assert verdicts["Llama 3: continue training at "] == "unsupported"
    assert all(c.computed.strip() for c in checks)
    # the evidence carries the numbers worked out by hand above, not just a typed verdict
    computed = {c.claim[:30]: c.computed for c in checks}
    kept, blended, divided = _llama31_bands_by_hand()
    assert f"{kept} kept, {divided} divided by 8, {blended} blended" in computed["Llama 3: continue training at "]
    assert "18 of 64 pairs" in computed["RoPE trained on 4K (positions "]
    assert "17 of 64" in computed["base -> infinity: every theta_"]  # 2 pi 1e12^(i/64) <= 8192 for i <= 16


def test_article_snippets_do_not_run():
    assert article.run_snippet(article.ARTICLE_YARN_SNIPPET).startswith("NameError")
    assert article.run_snippet(article.ARTICLE_EXTEND_SNIPPET).startswith("NameError")
    assert article.run_snippet("x = 1") == "ran"


# --- claim verdicts, checked against arithmetic done here ---

S = SEED_ARCHITECTURE


@pytest.fixture(scope="module")
def all_checks():
    return {"ch02": ch02.claims()}


def test_ch02_yarn_temperature(all_checks):
    c = one_claim(all_checks["ch02"], "YaRN temperature")
    s = 200_000 / 32_768
    assert c.verdict == "wrong" and claim_value(c.computed) == pytest.approx(1 / (0.1 * math.log(s) + 1) ** 2, rel=1e-3)
    both_limits = [one_claim(all_checks["ch02"], w) for w in ("base -> infinity", "base -> 0")]
    assert all("theta_0" in c.computed for c in both_limits)
