"""Chapter 7: quiz keys and claim verdicts against arithmetic done here, the chapter-only helpers of its claim set
(extension_cost), its diagrams, the stack figure's size, and the chapter's audited statements."""

import math
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
from claim_helpers import assert_claims_render, assert_quiz_keys, claim_value, one_claim

from longctx_lab.core.configs import LLAMA31_8B, LLAMA31_405B
from longctx_lab.course.claim_sets import ch07_production_stacks as ch07
from longctx_lab.course.quiz import NumericQuestion, Quiz
from longctx_lab.course.quizzes.ch07_production_stacks import QUIZ

CHAPTER = Path(__file__).resolve().parents[2] / "notebooks" / "ch07_production_stacks.md"
RING = {"procs": 4, "seq_len": 1024, "max_error": 6e-7, "messages": 3}


@pytest.fixture(scope="module")
def checks():
    return ch07.claims(ring=RING)


# ---------------------------------------------------------------------------------------------- quiz

def _causal_pairs(c: int, chunks: tuple[int, ...]) -> int:
    """Pairs a rank holding ``chunks`` (each of length c) attends to: every earlier chunk fully, its own causally."""
    return sum(a * c * c + c * (c + 1) // 2 for a in chunks)


def test_quiz_keys_match_hand_arithmetic():
    assert isinstance(QUIZ, Quiz) and 6 <= len(QUIZ.questions) <= 10
    prompts = [q.prompt for q in QUIZ.questions]
    for i, n in enumerate((1, 3, 4)):  # the article's own questions; its question 2 is chapter 3's
        assert prompts[i].startswith(f"(The article's question {n}.)")
    assert not any("receptive field" in p for p in prompts)  # chapter 3 keeps that question
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 4 and all(q.computed_by for q in numeric)
    imbalance, ring_bytes, share, cstar = (q.answer for q in numeric)
    c = 8192 // 8
    assert imbalance == pytest.approx(_causal_pairs(c, (7,)) / _causal_pairs(c, (0,)))
    assert ring_bytes == 7 * 2 * 8 * 128 * (131_072 // 8) * 2  # P - 1 blocks of K and V, bf16
    # Llama 3.1 8B at token 131,072: 4 FLOPs per (head, dim, key) per layer for scores and values, plus the
    # Q/K/V/O projections, over those plus the MLP (the chapter's one definition of attention's share)
    scores = 4 * 32 * 32 * 128 * 131_072
    projections = 2 * 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2)
    mlp = 2 * 32 * 3 * 4096 * 14336
    assert share == pytest.approx((scores + projections) / (scores + projections + mlp), rel=1e-3)
    # c* = kv_heads * b * F / (2 * heads * B): 8 * 2 * 400e12 / (2 * 32 * 100e9)
    assert cstar == pytest.approx(8 * 2 * 400e12 / (2 * 32 * 100e9))
    assert_quiz_keys(QUIZ)


def test_the_merge_question_keys_the_lse_weight():
    merge_q = next(q for q in QUIZ.questions if "lse_b = lse_a + 2" in q.prompt)
    (key,) = [o for o in merge_q.options if o.correct]
    weight = math.exp(2) / (1 + math.exp(2))
    assert f"{weight:.2f}" in key.text


# ---------------------------------------------------------------------------------------------- claims

def test_claims_render_with_the_policy(checks):
    assert_claims_render(checks, minimum=12)
    assert len({c.claim for c in checks}) == len(checks)  # nothing shown twice


def test_no_claim_is_rechecked_from_an_earlier_chapter(checks):
    """One claim, one verdict, one place: the lower-numbered chapter keeps a shared claim."""
    for words in ("far cheaper", ">99.7%", "Mixtral 8x7B combines", "64/8 = 8x", "4.1e20", "receptive field"):
        assert not [c for c in checks if words in c.claim], words


def test_distribution_verdicts(checks):
    per_device = one_claim(checks, "39K tokens per device")
    assert per_device.verdict == "correct" and claim_value(per_device.computed) == pytest.approx(10**7 / 256, abs=1)
    memory = one_claim(checks, "Per-device memory is O(n^2/P)")
    assert memory.verdict == "misleading" and ch07.memory_claim().claim == memory.claim
    # n^2/P scores per head in fp32 for 16 heads: 1e14 / 256 x 16 x 4 bytes, about 25,000 GB
    assert "25,0" in memory.computed
    ring = one_claim(checks, "passes KV blocks around a ring")
    assert ring.verdict == "correct" and "4 processes" in ring.computed and "6.0e-07" in ring.computed
    hours = one_claim(checks, "several hours of compute")
    assert hours.verdict == "wrong"
    seconds = 64 * 4 * 16 * 128 * (10**7 * (10**7 + 1) // 2) / (256 * 459e12)
    assert f"{seconds:,.0f} s" in hours.computed
    assert one_claim(checks, "likely uses Ring Attention").verdict == "unsupported"


def test_model_verdicts(checks):
    assert claim_value(one_claim(checks, "total parameter count 47B").computed) == pytest.approx(46.7e9, rel=2e-3)
    assert claim_value(one_claim(checks, "active parameters 13B").computed) == pytest.approx(12.9e9, rel=2e-3)
    pages = one_claim(checks, "roughly 7,500 pages")
    assert pages.verdict == "wrong" and claim_value(pages.computed) == pytest.approx(10**7 * 1382 / 732_000, abs=1)
    # the cited paper ("The Llama 3 Herd of Models") names its 128K models Llama 3: ambiguous naming, not an error
    assert one_claim(checks, "LLaMA 3 70B / 405B: 128K").verdict == "correct"


def test_the_article_is_named_by_title(checks):
    from longctx_lab.course.claims import SEED_PRODUCTION

    assert all(c.source == SEED_PRODUCTION for c in checks)
    text = CHAPTER.read_text()
    assert SEED_PRODUCTION in text
    assert not re.search(r"\b(first|second) article", text)


def test_extension_cost_against_hand_arithmetic():
    """Per-token forward FLOPs of a causal sequence: 2 per weight (no embedding lookup) plus 4 H d per attended
    pair, averaged over the sequence's n(n+1)/2 pairs per head and layer."""
    e = ch07.extension_cost(LLAMA31_405B, short=8192, long=131_072)
    layers, heads, d, h, inter, kv, vocab = 126, 128, 128, 16384, 53248, 8, 128_256
    weights = layers * (h * heads * d * 2 + h * kv * d * 2 + 3 * h * inter) + h * vocab

    def per_token(n):
        return 2 * weights + 4 * heads * d * layers * (n + 1) / 2

    assert e["per_token_short"] == pytest.approx(per_token(8192), rel=1e-3)
    assert e["ratio"] == pytest.approx(per_token(131_072) / per_token(8192), rel=1e-3)
    assert 1 < e["ratio"] < ch07.extension_cost(LLAMA31_8B)["ratio"]  # the smaller model gains more


# ---------------------------------------------------------------------------------------------- chapter text

def test_llama3_extension_is_not_called_position_interpolation():
    text = CHAPTER.read_text()
    assert "**not** Position Interpolation" in text
    assert "recipe Position Interpolation introduced" not in text
    assert "800B of the 15.6T" not in text  # the 800B came after the 15.6T, not out of it


def test_the_share_at_1k_is_a_minority_as_the_prose_says():
    from longctx_lab.course.stacks import attention_share_curve

    shares = [attention_share_curve(k, [1024])[0] for k in ("llama3.1-8b", "llama3.1-405b", "mistral-7b")]
    assert max(shares) < 0.5 and "a fifth or less" not in CHAPTER.read_text()


# ---------------------------------------------------------------------------------------------- figures

def _smallest_font(fig) -> float:
    return min(t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip())  # noqa: E501


def test_ring_diagram_shows_the_schedule_it_is_given():
    import matplotlib.pyplot as plt

    from longctx_lab.course.diagrams.ch07_production_stacks import draw_layout_grids, draw_ring_schedule

    schedule = [[0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1], [1, 2, 3, 0]]
    work = [[3, 3, 3, 3], [0, 4, 4, 4], [0, 0, 4, 4], [0, 0, 0, 4]]
    fig = draw_ring_schedule(schedule, work)
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    assert fig.get_figwidth() <= 7.5 and _smallest_font(fig) >= 9
    assert "3: skip" in texts and "15" in texts  # block 3 is all future for rank 0; rank 3's total, 3 + 4 + 4 + 4
    plt.close(fig)
    fig = draw_layout_grids({"plain": (schedule, work), "zigzag": ([[(0, 7)] * 4] * 4, [[5] * 4] * 4)})
    assert "0,7" in [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    assert fig.get_figwidth() <= 7.5 and _smallest_font(fig) >= 9
    plt.close(fig)
    with pytest.raises(ValueError):
        draw_ring_schedule(schedule, work[:2])


def test_stack_figure_fits_the_book():
    import matplotlib.pyplot as plt

    from longctx_lab.course.stack_plots import plot_attention_share, plot_stack_layers
    from longctx_lab.course.stacks import production_stack_table

    for fig in (plot_stack_layers(production_stack_table(contexts=(8192,))),
                plot_attention_share(["llama3.1-8b"])):
        assert fig.get_figwidth() <= 7.5 and _smallest_font(fig) >= 9
        plt.close(fig)
