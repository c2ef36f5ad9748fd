"""Chapter 4 package pieces: IO accounting of the tiled schedule, the quiz keys, the claim verdicts."""

import math
import re

import pytest
import torch
from claim_helpers import claim_value, one_claim

from longctx_lab.attention.block_sparsity import EMPTY, classify_blocks
from longctx_lab.attention.mask_predicates import attention_predicate
from longctx_lab.attention.naive_tiled_snippet import snippet_error
from longctx_lab.attention.reference import naive_attention
from longctx_lab.attention.tiled import (
    flash_block_sizes,
    standard_attention_hbm_bytes,
    tiled_attention,
    tiled_hbm_bytes,
)
from longctx_lab.core.cost import attention_flops
from longctx_lab.course.claim_sets import ch04_flash_attention as article
from longctx_lab.course.claim_sets import ch04_flash_attention as ch04
from longctx_lab.course.claims import SEED_ARCHITECTURE
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Quiz, check_answer
from longctx_lab.course.quizzes.ch04_flash_attention import QUIZ


@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (True, 100), (False, 30)])
def test_tiled_hbm_bytes_counts_visited_tiles(causal, window):
    q_len, kv_len, d, bq, bk = 300, 350, 32, 64, 48
    tiles = classify_blocks(attention_predicate(causal=causal, window=window), bq, bk, q_len=q_len, kv_len=kv_len)
    expected = 0
    for qb in range(tiles.shape[0]):
        rows = min(bq, q_len - qb * bq)
        keys = sum(min(bk, kv_len - kb * bk) for kb in range(tiles.shape[1]) if tiles[qb, kb] != EMPTY)
        expected += 2 * (2 * rows * d + 2 * keys * d) + 4 * rows  # fp16 Q, O, K, V; fp32 LSE
    got = tiled_hbm_bytes(q_len, kv_len, head_dim=d, causal=causal, window=window, block_q=bq, block_k=bk)
    assert got == expected
    assert tiled_hbm_bytes(q_len, kv_len, head_dim=d, causal=causal, window=window, block_q=bq, block_k=bk,
                           batch_heads=3) == 3 * expected


def test_standard_bytes_and_intensities():
    n, d = 4096, 64
    assert standard_attention_hbm_bytes(n, head_dim=d) == 2 * (4 * n * n + 4 * n * d)
    flops = attention_flops(n, d)
    # textbook attention: about d/2 FLOPs per byte; the tiled schedule: about block_q
    assert flops / standard_attention_hbm_bytes(n, head_dim=d) == pytest.approx(d / 2, rel=0.05)
    assert flops / tiled_hbm_bytes(n, head_dim=d, block_q=128) == pytest.approx(128, rel=0.05)
    assert flash_block_sizes(192 * 1024, 64) == (64, 384)  # A100, FlashAttention Algorithm 1
    assert flash_block_sizes(100, 64, 2) == (1, 1)
    with pytest.raises(ValueError, match="head_dim must be an integer >= 1, got 0"):
        tiled_hbm_bytes(10, head_dim=0)
    with pytest.raises(TypeError, match="element_bytes must be an integer"):
        standard_attention_hbm_bytes(10, head_dim=8, element_bytes=2.0)


def test_quiz_shape_and_keys():
    assert isinstance(QUIZ, Quiz) and 6 <= len(QUIZ.questions) <= 10
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 4 and all(q.computed_by for q in numeric)
    answers = sorted(q.answer for q in numeric)
    assert 5 + math.log(1 + 3 * math.exp(-3)) == pytest.approx(min(a for a in answers if a > 5))
    assert 32 * 33 / 2 in answers
    assert float(math.ceil(1000 / 96)) in answers  # one unit of weight per key tile, the short last one too
    assert any(q.answer == pytest.approx(3.5 / 3) for q in numeric)
    for q in QUIZ.questions:
        if isinstance(q, ChoiceQuestion):
            assert check_answer(q, sorted(q.correct_indices) if q.multiple else min(q.correct_indices)).correct
        else:
            assert check_answer(q, q.answer).correct and not check_answer(q, q.answer * 1.5).correct


def test_claim_verdicts():
    checks = article.claims()
    verdicts = {c.claim[:25]: c.verdict for c in checks}
    assert len(checks) >= 5
    assert verdicts["FlashAttention: 2-4x fast"] == "correct"  # against the authors' A100 / unfused baseline
    assert verdicts["FlashAttention needs O(N)"] == "correct"
    assert verdicts["Recomputing attention in "] == "wrong"
    assert verdicts["The tiled 'flash_attentio"] == "wrong"
    assert verdicts["FlashAttention doesn't re"] == "correct"
    assert all(c.computed.strip() for c in checks)
    # chapter 3 checks the articles' "approximate attention" claim; the lower-numbered chapter keeps it
    assert not any("approximat" in c.claim for c in checks)


def test_saved_for_backward_bytes_measures_growth():
    naive = [article.saved_for_backward_bytes(lambda q, k, v: naive_attention(q, k, v), n) for n in (128, 256)]
    tiled = [article.saved_for_backward_bytes(lambda q, k, v: tiled_attention(q, k, v), n) for n in (128, 256)]
    assert naive[1] / naive[0] > 3.3  # quadratic: the n x n probabilities are kept
    assert tiled[1] / tiled[0] == pytest.approx(2.0, rel=0.02)  # linear: q, k, v, out, lse
    assert tiled[1] == 4 * (4 * 256 * 16) + 4 * 256


def test_speed_claim_agrees_with_the_model_printed_beside_it():
    speed = one_claim(article.claims(), "2-4x faster")
    ratios = [float(r) for r in re.findall(r"([0-9.]+)x at n", speed.computed)]
    assert len(ratios) == len(article.SPEED_LENGTHS)
    assert all(2 <= r <= 4.05 for r in ratios), ratios  # the model's ceiling does not contradict "2-4x"
    assert "CPU" not in speed.computed  # no CPU timing beside a GPU claim


def test_snippet_numbers_used_by_the_chapter():
    result = snippet_error(512, 64, 128)
    assert result["n_key_blocks"] == 4 and result["snippet_relative_error"] > 1
    assert article.recomputation_flops_ratio() == pytest.approx(7 / 6)
    model = article.speed_model()
    assert model["standard_seconds"] > model["flash_seconds"] > 0
    assert torch.isfinite(torch.tensor(model["flops"], dtype=torch.float64))


# --- claim verdicts, checked against arithmetic done here ---

S = SEED_ARCHITECTURE


@pytest.fixture(scope="module")
def all_checks():
    return {"ch04": ch04.claims()}


def test_ch04_speed_claim_is_correct_against_the_papers_baseline(all_checks):
    speed = one_claim(all_checks["ch04"], "2-4x faster")
    assert speed.verdict == "correct"
    assert "A100" in speed.explanation and "unfused" in speed.explanation
    memory = one_claim(all_checks["ch04"], "O(N) memory")
    growth = ch04.backward_memory_growth()
    assert growth["lengths"] == (128, 256, 512, 1024)  # the chapter's plot: one exponent, not two
    assert growth["tiled"] == [4 * (4 * n * 16) + 4 * n for n in growth["lengths"]]  # q, k, v, out + lse, float32
    logs = [(math.log(n), math.log(b)) for n, b in zip(growth["lengths"], growth["naive"], strict=True)]
    mx, my = (sum(v) / len(logs) for v in zip(*logs, strict=True))
    slope = sum((x - mx) * (y - my) for x, y in logs) / sum((x - mx) ** 2 for x, _ in logs)
    assert memory.verdict == "correct" and f"grows as n^{slope:.2f}" in memory.computed
    recompute = one_claim(all_checks["ch04"], "doubles compute")
    assert recompute.verdict == "wrong" and claim_value(recompute.computed) == pytest.approx(3.5 / 3, rel=1e-3)


# --- the chapter's from-scratch pieces and diagrams ---


def _streaming_stats(scores, block):
    """The chapter's section 1 loop (kept in step with the notebook's cell)."""
    m = torch.tensor(-math.inf, dtype=scores.dtype)
    l = torch.tensor(0.0, dtype=scores.dtype)
    steps = []
    for start in range(0, len(scores), block):
        s = scores[start:start + block]
        m_new = torch.maximum(m, s.max())
        alpha = torch.exp(m - m_new)
        l = alpha * l + torch.exp(s - m_new).sum()
        m = m_new
        steps.append((start + len(s), m.item(), alpha.item(), l.item()))
    return m, l, steps


def test_the_hand_checkable_row_of_section_1():
    scores = torch.tensor([1.0, 3.0, 2.0, 6.0, 0.0, 4.0], dtype=torch.float64)
    m, l, steps = _streaming_stats(scores, 2)
    assert [s[1] for s in steps] == [3.0, 6.0, 6.0]
    assert steps[1][2] == pytest.approx(math.exp(-3))  # the max jumps 3 -> 6: old sum times e^-3
    assert steps[0][3] == pytest.approx(1 + math.exp(-2))
    assert float(m + torch.log(l)) == pytest.approx(float(torch.logsumexp(scores, 0)))


@pytest.fixture
def agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longctx_lab.core.display import use_course_style

    use_course_style()
    yield plt
    plt.close("all")


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_diagrams_draw_the_cells_numbers_at_book_width(agg):
    from longctx_lab.course.diagrams import ch04_flash_attention as diagrams

    scores = torch.tensor([1.0, 3.0, 2.0, 6.0, 0.0, 4.0], dtype=torch.float64)
    _, _, steps = _streaming_stats(scores, 2)
    fig = diagrams.draw_online_softmax(scores.tolist(), 2, steps)
    texts = _texts(fig)
    assert f"l = {steps[1][3]:.3f}" in texts and any(f"α = {steps[1][2]:.3g}" in t for t in texts)
    walk = [(i, j) for i in range(3) for j in range(3)]
    fig = diagrams.draw_tile_walk(10, 10, 4, 4, walk, query_tile=1)
    texts = _texts(fig)
    assert "9 loads" in texts and "3 loads" in texts and "3 writes" in texts and "9" in texts
    tiles = {t: classify_blocks(attention_predicate(causal=c), 32, q_len=256) for t, c in (("a", False),
                                                                                         ("b", True))}
    fig = diagrams.draw_tile_classes(tiles, 32)
    assert "256 × 256 scores in 32 × 32-element tiles (8 × 8 tiles)" in _texts(fig)
    fig_n = diagrams.draw_tile_classes(tiles, 32, n=250)  # a last tile that is short
    assert "250 × 250 scores in 32 × 32-element tiles (8 × 8 tiles)" in _texts(fig_n)
    fig2 = diagrams.draw_delta_shortcut([0.5, 0.5], [1.0, 3.0], [1.0, 1.0], [0.5, 1.5])
    assert any("= 2.0000" in t for t in _texts(fig2))
    for f in (fig, fig2):
        assert f.get_size_inches()[0] <= 7.5
        sizes = [t.get_fontsize() for t in f.findobj(lambda a: hasattr(a, "get_fontsize"))
                 if getattr(t, "get_text", lambda: "")()]
        assert min(sizes) >= 9
