"""Chapter 1's claim verdicts, each checked against arithmetic done here (the policy: tests/test_claims.py)."""


import math

import matplotlib
import pytest
from claim_helpers import assert_claims_render, assert_quiz_keys, claim_value, one_claim

from longctx_lab.course.claim_sets import ch01_quadratic_wall as ch01
from longctx_lab.course.claims import SEED_ARCHITECTURE

S = SEED_ARCHITECTURE


@pytest.fixture(scope="module")
def all_checks():
    return {"ch01": ch01.claims()}


def test_ch01_snippet_outputs_are_compared_with_what_the_code_prints(all_checks):
    checks = all_checks["ch01"]
    for n, shown in ch01.ARTICLE_MATRIX_OUTPUT.items():
        c = one_claim(checks, f"The code's output for {n:,} tokens")
        by_hand = f"{n * n * 4 / 1024**3:.2f}"
        assert claim_value(c.computed) == float(by_hand)
        assert c.verdict == ("correct" if shown == by_hand else "wrong")
    assert one_claim(checks, "200,000 tokens: 148.77").verdict == "wrong"  # 149.01
    assert one_claim(checks, "2,048 tokens: 0.02").verdict == "correct"
    kv = one_claim(checks, "48.83")
    assert kv.verdict == "wrong"
    assert kv.computed.startswith(f"{2 * 80 * 200_000 * 8192 * 2 / 1024**3:.2f}")  # 488.28
    assert kv.ratio == pytest.approx(0.1, rel=0.01)
    assert one_claim(checks, "87.5%").verdict == "correct"


def test_ch01_attention_matrix(all_checks):
    checks = all_checks["ch01"]
    per_layer = one_claim(checks, "80 GB per layer")
    assert per_layer.verdict == "wrong"  # correct per head, 64x too small per layer
    assert claim_value(per_layer.computed) == 64 * 200_000**2 * 2 / 1e9
    assert per_layer.ratio == pytest.approx(1 / 64)
    assert f"{200_000**2 * 2 / 1e9:.0f} GB" in per_layer.explanation and "64x" in per_layer.explanation
    for label in ("2,048 tokens: 4M", "8,192 tokens: 64M", "32,768 tokens: 1B", "131,072 tokens: 16B",
                  "200,000 tokens: 40B", "2,048 tokens: 16 MB", "8,192 tokens: 256 MB", "32,768 tokens: 4 GB",
                  "131,072 tokens: 64 GB", "200,000 tokens: 160 GB"):
        assert one_claim(checks, label).verdict == "correct", label


def test_ch01_kv_cache(all_checks):
    checks = all_checks["ch01"]
    for words, kv_heads in (("about 335 GB", 64), ("about 42 GB", 8), ("about 5 GB", 1)):
        c = one_claim(checks, words)
        assert c.verdict == "correct"
        assert claim_value(c.computed) == pytest.approx(2 * 80 * kv_heads * 128 * 128_000 * 2 / 1e9, rel=1e-3)
    tens = one_claim(checks, "tens of gigabytes")
    assert tens.verdict == "wrong"
    assert claim_value(tens.computed) == pytest.approx(2 * 80 * 8 * 128 * 10**6 * 2 / 1e9, rel=1e-3)  # 327.7 GB
    # 16x / 32x: GQA (64 -> 8 heads) times INT8 (2 bytes -> 1) or INT4 (-> 0.5); paging adds no factor
    for words, factor in (("16x with INT8", 8 * 2), ("32x with INT4", 8 * 4)):
        c = one_claim(checks, words)
        assert c.verdict == "correct" and claim_value(c.computed) == factor
        assert "PagedAttention adds no factor" in c.explanation
    claude = one_claim(checks, "Claude 3 Opus")
    assert claude.verdict == "wrong" and "unsourced" in claude.claim
    own_design = 2 * 8 * 128 * 1 * (10 * 200_000 + 70 * 4096) / 1e9  # 10 global + 70 windowed layers, fp8
    assert claim_value(claude.computed) == pytest.approx(own_design, rel=1e-3)
    assert f"{2 * 80 * 8 * 128 * 200_000 / 1e9:.1f} GB" in claude.explanation  # all 80 layers full: 32.8 GB
    weights = one_claim(checks, "Model weights: ~150GB")
    assert weights.verdict == "wrong" and claim_value(weights.computed) == 140


def test_ch01_gemini_flops(all_checks):
    checks = all_checks["ch01"]
    n = 10**7
    causal_forward = 4 * 16 * 128 * n * (n + 1) // 2  # Q K^T and P V over n(n+1)/2 pairs
    qk_full = 2 * 16 * n * n * 128  # the article's formula
    one_layer = one_claim(checks, "4.1e20")
    assert one_layer.verdict == "wrong" and one_layer.ratio == pytest.approx(1000, rel=0.01)
    assert claim_value(one_layer.computed) == pytest.approx(qk_full)
    assert f"{causal_forward:.2e}" in one_layer.explanation  # 4.10e+17, the same as the formula's value
    assert "8.2e17" not in one_layer.explanation
    layers = one_claim(checks, "2.6e22")
    assert layers.verdict == "wrong" and claim_value(layers.computed) == pytest.approx(64 * causal_forward, rel=1e-3)
    assert one_claim(checks, "4.1e12").verdict == "wrong"
    assert one_claim(checks, "eight orders of magnitude").verdict == "correct"
    hundreds = one_claim(checks, "hundreds of TeraFLOPs")
    m = 10**6
    assert hundreds.verdict == "wrong"
    assert claim_value(hundreds.computed) == pytest.approx(4 * 64 * 128 * m * (m + 1) / 2 / 1e12, rel=1e-3)  # 16,384


def test_ch01_hardware_and_serving(all_checks):
    checks = all_checks["ch01"]
    hbm = one_claim(checks, "A100 HBM bandwidth")
    assert hbm.verdict == "correct" and "PCIe" in hbm.claim and "2,039" in hbm.explanation
    assert one_claim(checks, "on-chip slower than HBM").verdict == "wrong"
    assert one_claim(checks, "Time-to-first-token scales linearly").verdict == "wrong"
    decode = one_claim(checks, "Generation speed")
    assert decode.verdict == "misleading" and "except the input embedding" in decode.computed


def test_ch01_picked_names_the_inline_errors_and_refuses_ambiguity(all_checks):
    inline = ch01.picked("80 GB per layer", "on-chip slower than HBM", "Time-to-first-token scales linearly")
    assert [c.verdict for c in inline] == ["wrong"] * 3
    assert all(c in all_checks["ch01"] for c in inline)
    with pytest.raises(ValueError, match="exactly one"):
        ch01.picked("tokens")  # many claims
    with pytest.raises(ValueError, match="exactly one"):
        ch01.picked("no such claim")
    assert_claims_render(all_checks["ch01"], minimum=20)


# --- quiz -------------------------------------------------------------------------------------------

def test_ch01_quiz_keys():
    from dataclasses import replace

    from longctx_lab.course.quiz import NumericQuestion, check_answer
    from longctx_lab.course.quizzes.ch01_quadratic_wall import QUIZ

    many = [q for q in QUIZ.questions if getattr(q, "multiple", False)]
    assert_quiz_keys(replace(QUIZ, questions=tuple(q for q in QUIZ.questions if q not in many)))
    for q in many:  # all the correct options together, and only those
        assert check_answer(q, q.correct_indices).correct
        assert not check_answer(q, {min(q.correct_indices)}).correct
    numeric = [q.answer for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert numeric[0] == 32768**2 * 2 / 2**30
    assert numeric[1] == 2 * 80 * 8 * 128 * 131072 * 2 / 1e9
    assert numeric[2] == (4096 * 4097 / 2) / 4096**2
    assert numeric[3] == pytest.approx(50 * 3.35e12 / 1e12)  # below the H100's ridge: the bandwidth slope
    assert numeric[4] == pytest.approx(2039e9 / 16e9)  # one read of 16 GB of weights per token


# --- diagrams ---------------------------------------------------------------------------------------

@pytest.fixture
def agg():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longctx_lab.core.display import smallest_text_points, use_course_style

    use_course_style()
    yield smallest_text_points
    plt.close("all")


def _texts(fig):
    from matplotlib.text import Text

    return " | ".join(t.get_text() for t in fig.findobj(Text))


def test_ch01_diagrams_fit_the_book_and_show_the_cells_numbers(agg):
    import torch

    from longctx_lab.core import configs, cost
    from longctx_lab.course.diagrams import ch01_quadratic_wall as dg

    q = torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    s = q @ q.T / math.sqrt(3)
    p = s.softmax(-1)
    figs = [dg.draw_attention_steps(s, p, q, p @ q), dg.draw_pair_grids((4, 8)),
            dg.draw_memory_hierarchy(configs.A100_80GB_SXM),
            dg.draw_roofline(configs.H100_SXM, {"decode": 1.1}), dg.draw_kv_cache(6)]
    for fig in figs:
        width, _ = fig.get_size_inches()
        assert width <= 7.5 and agg(fig) >= 9
    attention, grids, hierarchy, roof, kv = (_texts(f) for f in figs)
    assert f"{p[0, 0].item():.2f}" in attention and "16 scores" in attention
    assert f"{cost.attended_pairs(8, causal=True)} causal" not in grids  # the title words it as "keeps"
    assert f"causal keeps {cost.attended_pairs(8, causal=True)}" in grids and "64 pairs" in grids
    assert f"{configs.A100_80GB_SXM.smem_bandwidth / 1e12:,.2f} TB/s" in hierarchy
    assert f"{configs.H100_SXM.ridge_intensity:.0f} FLOPs/byte" in roof
    assert f"no cache: {cost.attended_pairs(6, causal=True)} projections" in kv and "KV cache: 6" in kv
    with pytest.raises(ValueError):
        dg.draw_attention_steps(s, p, q, p)
    with pytest.raises(ValueError):
        dg.projection_counts(0)


def test_ch01_hierarchy_rows_are_fastest_first_and_on_chip_first():
    from longctx_lab.core.configs import A100_80GB_SXM
    from longctx_lab.course.diagrams import ch01_quadratic_wall as dg

    rows = dg.hierarchy_rows(A100_80GB_SXM)
    assert [r[0] for r in rows][:4] == ["registers", "SRAM (shared memory / L1)", "L2 cache", "HBM"]
    assert [r[3] for r in rows] == [True, True, True, False, False]
    caps = [r[1] for r in rows]
    assert caps[3] < caps[4]  # HBM < host RAM



def test_ch01_pair_grids_hug_their_own_grid_at_one_scale(agg):
    """Each panel's limits are its own n (ticks sit with the grid), and a cell is the same size in each."""
    from longctx_lab.course.diagrams import ch01_quadratic_wall as dg

    fig = dg.draw_pair_grids((4, 8))
    small, big = fig.axes
    assert small.get_xlim() == (-0.5, 3.5) and big.get_xlim() == (-0.5, 7.5)
    assert list(small.get_xticks()) == [0, 3]
    w_small, w_big = small.get_position().width, big.get_position().width
    assert w_big == pytest.approx(2 * w_small)
    assert small.get_position().y0 == pytest.approx(big.get_position().y0)


def test_ch01_hierarchy_title_matches_its_numbers(agg):
    """The figure says faster towards the top, not smaller: the register file outsizes shared memory."""
    from longctx_lab.core.configs import A100_80GB_SXM
    from longctx_lab.course.diagrams import ch01_quadratic_wall as dg

    caps = {name: cap for name, cap, _, _ in dg.hierarchy_rows(A100_80GB_SXM)}
    assert caps["registers"] > caps["SRAM (shared memory / L1)"]
    title = _texts(dg.draw_memory_hierarchy(A100_80GB_SXM))
    assert "faster towards the top" in title and "smaller" not in title


def test_ch01_batched_decode_question_is_left_of_the_ridge():
    from longctx_lab.core.configs import H100_SXM, LLAMA3_70B
    from longctx_lab.core.cost import decode_step
    from longctx_lab.course.quizzes.ch01_quadratic_wall import QUIZ

    last = QUIZ.questions[-1]
    batched = decode_step(LLAMA3_70B, 128, batch=64)["intensity"]
    assert decode_step(LLAMA3_70B, 8192)["intensity"] < batched < H100_SXM.ridge_intensity
    assert f"Near {batched:.0f} FLOPs/byte" in last.options[min(last.correct_indices)].text
