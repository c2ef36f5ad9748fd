"""Chapter 2: quiz keys against numbers worked out by hand, claim verdicts, and the chapter's diagrams."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from claim_helpers import claim_value, one_claim

from longctx_lab import rope
from longctx_lab.course.claim_sets import ch02_rope_scaling as article
from longctx_lab.course.diagrams import ch02_rope_scaling as diagrams
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Quiz, check_answer
from longctx_lab.course.quizzes.ch02_rope_scaling import QUIZ

matplotlib.use("Agg")


def _llama31_bands_by_hand():
    """Llama 3.1 (d=128, base 5e5, original 8192, low 1, high 4): pairs kept / blended / divided, from the
    wavelengths 2 pi 500000^(2i/128) alone, without longctx_lab."""
    wl = [2 * math.pi * 500_000.0 ** (2 * i / 128) for i in range(64)]
    kept = sum(w < 8192 / 4 for w in wl)
    divided = sum(w > 8192 / 1 for w in wl)
    return kept, 64 - kept - divided, divided


def test_quiz_numeric_keys_by_hand():
    assert isinstance(QUIZ, Quiz) and 6 <= len(QUIZ.questions) <= 10
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) == 3 and all(q.computed_by for q in numeric)
    short, neighbour, ntk = (q.answer for q in numeric)
    # d=64, base 1e4, 2,048 tokens: pairs with 2 pi 1e4^(2i/64) > 2048
    assert short == sum(2 * math.pi * 10_000.0 ** (2 * i / 64) > 2048 for i in range(32)) == 11
    assert neighbour == pytest.approx(1 / 16)  # PI by 16: pair 0 turns 1/16 rad per token
    assert ntk == pytest.approx(10_000.0 * 4.0 ** (64 / 62)) and 41_820 < ntk < 41_840
    for q in QUIZ.questions:
        if isinstance(q, ChoiceQuestion):
            assert check_answer(q, sorted(q.correct_indices) if q.multiple else min(q.correct_indices)).correct
        else:
            assert check_answer(q, q.answer).correct and not check_answer(q, q.answer * 1.5).correct


def test_claims_build_with_expected_verdicts():
    checks = article.claims()
    verdicts = {c.claim[:30]: c.verdict for c in checks}
    assert len(checks) >= 8
    assert verdicts["theta_i = 1 / base^(2i/d) (ind"] == "misleading"
    assert verdicts["Interpolating the rotation fre"] == "correct"
    assert verdicts["YaRN temperature = 0.5"] == "wrong"
    assert verdicts["Llama 3: continue training at "] == "unsupported"
    assert all(c.computed.strip() for c in checks)
    computed = {c.claim[:30]: c.computed for c in checks}
    kept, blended, divided = _llama31_bands_by_hand()
    assert f"{kept} kept, {divided} divided by 8, {blended} blended" in computed["Llama 3: continue training at "]
    assert "18 of 64 pairs" in computed["RoPE trained on 4K (positions "]
    assert "17 of 64" in computed["base -> infinity: every theta_"]  # 2 pi 1e12^(i/64) <= 8192 for i <= 16


def test_inline_claims_are_the_teaching_errors():
    """The chapter shows these two inline: extrapolation 'just works' and YaRN's ramp backwards."""
    (extrapolation,) = article.extrapolation_claims()[:1]
    (backwards,) = article.yarn_snippet_claims()[1:2]
    assert extrapolation.verdict == "wrong" and "works at 32K" in extrapolation.claim
    assert backwards.verdict == "wrong" and "scale less for low frequencies" in backwards.claim


def test_yarn_temperature_claim():
    c = one_claim(article.claims(), "YaRN temperature")
    s = 200_000 / 32_768
    assert c.verdict == "wrong" and claim_value(c.computed) == pytest.approx(1 / (0.1 * math.log(s) + 1) ** 2, rel=1e-3)


def test_article_snippets_do_not_run():
    assert article.run_snippet(article.ARTICLE_YARN_SNIPPET).startswith("NameError")
    assert article.run_snippet(article.ARTICLE_EXTEND_SNIPPET).startswith("NameError")
    assert article.run_snippet("x = 1") == "ran"


def _texts(fig):
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]


def test_pair_rotation_diagram_shows_the_cells_angle():
    """Query pair at angle m, key pair at pi/2 + n (theta 1): the angle written is m - n - pi/2."""
    panels = []
    for m, n in ((3, 1), (6, 4)):
        q = torch.tensor([math.cos(m), math.sin(m)])
        k = torch.tensor([math.cos(math.pi / 2 + n), math.sin(math.pi / 2 + n)])
        panels.append((f"{m},{n}", q, k))
    fig = diagrams.draw_pair_rotation(panels)
    want = f"{2 - math.pi / 2:+.2f} rad"
    assert sum(want in t for t in _texts(fig)) == 2
    assert fig.get_size_inches()[0] <= 7.5
    matplotlib.pyplot.close(fig)


def test_trained_arcs_diagram_numbers():
    theta, train, new = 1e-4, 4096, 32768
    fig = diagrams.draw_trained_arcs(theta, train, new, factor=8.0)
    texts = " ".join(_texts(fig))
    assert f"swept {train * theta:.2f} rad" in texts and f"swept {new * theta:.2f} rad" in texts
    assert f"({(new - train) * theta:.2f} unseen)" in texts
    matplotlib.pyplot.close(fig)


def test_yarn_ramp_diagram_marks_the_packages_range():
    low, high = rope.yarn_correction_range(128, 10_000.0, 4096)
    ramp = rope.yarn_ramp(low, high, 64)
    turns = rope.turns_in_context(rope.default_rope(128)[0], 4096)
    fig = diagrams.draw_yarn_ramp(turns, ramp, beta_fast=32.0, beta_slow=1.0, low=low, high=high)
    texts = " ".join(_texts(fig))
    assert f"low = {low:g}" in texts and f"high = {high:g}" in texts
    assert float(turns[low]) > 32 > 1 > float(turns[high])  # the ramp's ends straddle beta_fast and beta_slow
    matplotlib.pyplot.close(fig)


def test_pair_cosine_diagram_marks_where_the_cosine_turns_negative():
    theta = float(rope.default_rope(128, 10_000.0)[0][-1])  # pair 63, the chapter's slowest pair
    fig = diagrams.draw_pair_cosine(theta, 4096, 32768, pair=63)
    texts = " ".join(_texts(fig))
    flip = math.pi / (2 * theta)
    assert 4096 < flip < 32768  # positive all through training, negative before 32K
    assert f"cosine turns negative at {flip:,.0f}" in texts and "0..4,096" in texts
    assert fig.get_size_inches()[0] <= 7.5
    matplotlib.pyplot.close(fig)


def test_last_question_needs_the_unseen_count_per_scheme():
    """Head dim 64, base 1e4, trained on 2,048, run at 8,192: plain RoPE and NTK leave pairs out of range,
    PI and YaRN none. Counted by hand: pairs whose trained arc 2048 * theta_i < 2 pi and whose new largest
    angle exceeds it."""
    last = QUIZ.questions[-1]
    assert last.multiple and "8,192" in last.prompt

    def unseen(theta_new):
        theta = [10_000.0 ** (-2 * i / 64) for i in range(32)]
        return sum(2048 * t < 2 * math.pi and 8192 * tn > 2048 * t * (1 + 1e-9)
                   for t, tn in zip(theta, theta_new, strict=True))

    plain = [10_000.0 ** (-2 * i / 64) for i in range(32)]
    ntk_base = 10_000.0 * 4.0 ** (64 / 62)
    ntk = [ntk_base ** (-2 * i / 64) for i in range(32)]
    assert unseen(plain) == 11 and unseen(ntk) == 10
    assert [o.correct for o in last.options] == [True, False, True, False]
