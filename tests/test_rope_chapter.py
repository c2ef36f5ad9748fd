"""Chapter 2's quiz and article-claim checks: they build, their keys come from the package, verdicts hold."""

from __future__ import annotations

import pytest

from longctx_lab import rope
from longctx_lab.claim_sets import ch02_rope_scaling as article
from longctx_lab.quiz import ChoiceQuestion, NumericQuestion, Quiz, check_answer
from longctx_lab.quizzes.ch02_rope_scaling import QUIZ


def test_quiz_shape_and_numeric_keys():
    assert isinstance(QUIZ, Quiz) and len(QUIZ.questions) >= 5
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 3 and all(q.computed_by for q in numeric)
    by_prompt = {q.prompt.split("?")[0][-40:]: q for q in numeric}
    assert any(q.answer == pytest.approx(rope.ntk_base(10_000.0, 8.0, 128)) for q in by_prompt.values())
    assert any(q.answer == pytest.approx(rope.yarn_attention_factor(16.0) ** 2) for q in by_prompt.values())
    assert any(q.answer == 18 for q in numeric)  # 4K context, d=128, base 1e4: see test_unseen below
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


def test_article_snippets_do_not_run():
    assert article.run_snippet(article.ARTICLE_YARN_SNIPPET).startswith("NameError")
    assert article.run_snippet(article.ARTICLE_EXTEND_SNIPPET).startswith("NameError")
    assert article.run_snippet("x = 1") == "ran"
