"""Chapter 3's claim checks and quiz: verdicts follow from package numbers, keys are computed."""

from __future__ import annotations

import pytest
import torch
from claim_helpers import claim_value, one_claim

from longctx_lab.course.claim_sets import ch03_sliding_window_sparse as article
from longctx_lab.course.claim_sets import ch03_sliding_window_sparse as ch03
from longctx_lab.course.claims import SEED_ARCHITECTURE, ClaimCheck
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, check_answer
from longctx_lab.course.quizzes.ch03_sliding_window_sparse import QUIZ


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
    assert verdict("A 512-key window at 200K tokens") == "wrong"
    assert verdict("All successful long-context models") == "wrong"
    assert verdict("Two axial passes") == "correct"
    assert verdict("Longformer-style attention") == "wrong"
    # the 400x arithmetic against full n^2 is chapter 1's claim (the lower chapter keeps a shared claim)
    assert not [c for c in checks if c.claim.startswith("200K^2 = 40B")]
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
    assert 6 <= len(QUIZ.questions) <= 10
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    answers = [q.answer for q in numeric]
    # by hand: 3 short rows (1 + 2 + 3) and 13 full rows of 4; 12 hops of 511 plus the query; 10,000 - 2 x 4,096
    assert answers[:3] == [1 + 2 + 3 + 13 * 4, 12 * 511 + 1, 10_000 - 2 * 4096]
    assert check_answer(numeric[0], 58).correct and not check_answer(numeric[0], 64).correct
    assert not check_answer(numeric[1], 12 * 512).correct
    # a 40-layer, 8-KV-head, 128-dim model's rolling buffer of 8,192 tokens in bf16, K and V
    assert numeric[3].answer == pytest.approx(2 * 40 * 8 * 128 * 8192 * 2 / 1e9, rel=1e-12)
    n, w = 100_000, 1000
    assert numeric[4].answer == pytest.approx((n * (n + 1) / 2) / (n * w - w * (w - 1) / 2), rel=1e-12)
    assert not check_answer(numeric[4], 100).correct
    assert numeric[5].answer == 2
    for q in numeric:
        assert f"{q.answer:,.0f}" in q.explanation or f"{q.answer:.3f}" in q.explanation or (
            f"{q.answer:.0f}" in q.explanation), q.prompt


def test_quiz_choice_questions_explain_every_option():
    choices = [q for q in QUIZ.questions if isinstance(q, ChoiceQuestion)]
    assert choices and all(o.explanation.strip() for q in choices for o in q.options)
    bigbird = next(q for q in choices if "BigBird" in q.prompt)
    assert [o.correct for o in bigbird.options] == [True, True, True, False]


def test_rolling_claims_explanations_carry_the_numbers():
    """The explanations' numbers are computed: 32 / 8 KV heads = 4x, and 4,096 of 1,048,576 tokens kept."""
    by_claim = {c.claim: c for c in article.rolling_buffer_claims()}
    assert "0.537 GB, 4x smaller" in by_claim["...and that is Mistral 7B's rolling KV cache"].explanation
    saved = by_claim["At 1M tokens the rolling buffer saves 100% of KV-cache memory"]
    assert f"{100 * (1 - 4096 / 1_048_576):.1f}% (4,096 of 1,048,576 tokens" in saved.explanation


# --- claim verdicts, checked against arithmetic done here ---

S = SEED_ARCHITECTURE


@pytest.fixture(scope="module")
def all_checks():
    return {"ch03": ch03.claims()}


def test_ch03_receptive_field_under_each_convention(all_checks):
    checks = all_checks["ch03"]
    W, L = 4096, 32
    field = one_claim(checks, "receptive field = L x w")
    assert field.verdict == "correct" and claim_value(field.computed) == L * W  # W + 1 keys: W back per layer
    assert f"{L * (W - 1) + 1:,}" in field.explanation  # Hugging Face's W-key window: 131,041 positions
    assert "Hugging Face" in field.explanation and "reference" in field.explanation
    layer1 = one_claim(checks, "After layer 1")
    assert layer1.verdict == "correct" and claim_value(layer1.computed) == 50_000 - W
    assert f"{50_000 - (W - 1):,}" in layer1.explanation  # 45,905 under Hugging Face's window
    layer2 = one_claim(checks, "After layer 2")
    assert layer2.verdict == "correct" and claim_value(layer2.computed) == 50_000 - 2 * W
    assert f"{50_000 - 2 * (W - 1):,}" in layer2.explanation  # 41,810
    assert "released implementation" not in " ".join(c.explanation for c in checks)


def test_ch03_training_context_and_effective_range(all_checks):
    checks = all_checks["ch03"]
    sees = one_claim(checks, "effectively 'sees' 131K")
    assert sees.verdict == "misleading"
    assert "8,192-token" in sees.computed and "32,768" in sees.computed  # training length vs HF position limit
    demo = ch03.mistral_effective_range_demo()
    assert demo["n"] == 160 and demo["range_90"] == demo["rows"][-1]["range_90"]  # the chapter's table
    assert f"within {demo['range_90']} positions" in sees.computed
    assert [r["span"] for r in demo["rows"]] == [min(160, (d + 1) * 15 + 1) for d in range(8)]
    context = one_claim(checks, "'32K' context")
    assert context.verdict == "misleading" and "8,192" in context.computed


def test_ch03_rolling_buffer(all_checks):
    checks = all_checks["ch03"]
    always = one_claim(checks, "is always 2.1 GB")
    assert always.verdict == "correct" and always.computed.startswith(f"{2 * 4096 * 128 * 32 * 32 * 2 / 1e9:.1f}")
    mistral = one_claim(checks, "that is Mistral 7B's rolling KV cache")
    expected = 2 * 4096 * 128 * 8 * 32 * 2 / 1e9
    assert mistral.verdict == "wrong" and claim_value(mistral.computed) == pytest.approx(expected, rel=1e-3)
    saved = one_claim(checks, "saves 100%")
    assert saved.verdict == "correct" and saved.computed.startswith(f"{100 * (1 - 4096 / 2**20):.0f}")
    assert one_claim(checks, "Two axial passes").verdict == "correct"  # 33,554,432 written as about 33M
    assert one_claim(checks, "4.3B").verdict == "correct"
    assert one_claim(checks, "decoder LM, which is causal").verdict == "wrong"


# --- chapters 2 and 4 -----------------------------------------------------------------------------


# --- the chapter's from-scratch identities and its diagrams ---


def test_sink_mask_is_a_causal_longformer_with_the_first_tokens_global():
    from longctx_lab.attention.mask_predicates import longformer_predicate, sliding_window_predicate

    for n, w, sinks in ((8, 3, 1), (20, 4, 3), (12, 12, 2), (9, 1, 4)):
        p, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        by_hand = (j <= p) & ((p - j < w) | (j < sinks))
        assert torch.equal(longformer_predicate(w, list(range(sinks)), n, causal=True).dense(n), by_hand)
        assert torch.equal(sliding_window_predicate(w).dense(n), (j <= p) & (p - j < w))


def test_diagrams_draw_what_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longctx_lab.attention.mask_predicates import sliding_window_predicate
    from longctx_lab.attention.receptive_field import reachability
    from longctx_lab.course.diagrams import ch03_sliding_window_sparse as diagrams

    mask = sliding_window_predicate(3).dense(8)
    fig = diagrams.draw_mask_rule(mask, query=5)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "query 5 sees\nkeys 3, 4, 5" in texts
    reach = reachability(sliding_window_predicate(3).dense(16), 3)
    fig = diagrams.draw_receptive_field(reach, 3)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert ["3 positions", "5 positions", "7 positions"] == sorted(x for x in labels if "positions" in x)
    history = [[0, -1, -1], [0, 1, -1], [0, 1, 2], [3, 1, 2]]
    fig = diagrams.draw_rolling_buffer(history)
    assert "evicts 0" in [t.get_text() for t in fig.axes[0].texts]
    fig = diagrams.draw_tiles_gallery({"w4": sliding_window_predicate(4), "w8": sliding_window_predicate(8)}, 32, 8,
                                      cols=2)
    for f in plt.get_fignums():
        assert plt.figure(f).get_figwidth() <= 7.5
    plt.close("all")
