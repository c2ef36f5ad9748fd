"""Chapter 7: quiz keys and claim verdicts against arithmetic done here, and the chapter-only helpers of its
claim set (extension_cost)."""

import math

import pytest
from claim_helpers import assert_claims_render, assert_quiz_keys, claim_value, one_claim

from longctx_lab.course.claim_sets import ch07_production_stacks as ch07
from longctx_lab.course.quiz import NumericQuestion, Quiz
from longctx_lab.course.quizzes.ch07_production_stacks import QUIZ

RING = {"procs": 4, "seq_len": 1024, "max_error": 6e-7, "messages": 3}


@pytest.fixture(scope="module")
def checks():
    return ch07.claims(ring=RING)


# ---------------------------------------------------------------------------------------------- quiz

def _causal_pairs(c: int, chunks: tuple[int, ...]) -> int:
    """Pairs a rank holding ``chunks`` (each of length c) attends to: every earlier chunk fully, its own causally."""
    return sum(a * c * c + c * (c + 1) // 2 for a in chunks)


def test_quiz_keys_match_hand_arithmetic():
    assert isinstance(QUIZ, Quiz) and len(QUIZ.questions) >= 6
    prompts = [q.prompt for q in QUIZ.questions]
    for i in range(1, 5):  # the article's own four questions come first
        assert prompts[i - 1].startswith(f"(The article's question {i}.)")
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 4 and all(q.computed_by for q in numeric)
    reach, imbalance, ring_bytes, share = (q.answer for q in numeric)
    assert reach == 32 * 4096  # Mistral's convention: W + 1 keys per query, so L x W positions back
    assert math.isclose(32 * 4095, reach, rel_tol=numeric[0].rel_tol)  # Hugging Face's W keys is accepted too
    c = 4096 // 4
    assert imbalance == pytest.approx(_causal_pairs(c, (3,)) / _causal_pairs(c, (0,)))
    assert ring_bytes == 7 * 2 * 8 * 128 * (131_072 // 8) * 2  # P - 1 blocks of K and V, bf16
    # Llama 3.1 8B at token 131,072: 4 FLOPs per (head, dim, key) per layer for scores and values, over the total
    scores = 4 * 32 * 32 * 128 * 131_072
    weights = 2 * (32 * (4096 * 4096 * 2 + 4096 * 1024 * 2) + 32 * 3 * 4096 * 14336 + 4096 * 128_256)
    assert share == pytest.approx(scores / (scores + weights), rel=1e-3)
    assert_quiz_keys(QUIZ)


# ---------------------------------------------------------------------------------------------- claims

def test_claims_render_with_the_policy(checks):
    assert_claims_render(checks, minimum=20)
    assert len({c.claim for c in checks}) == len(checks)  # nothing shown twice


def test_distribution_verdicts(checks):
    per_device = one_claim(checks, "39K tokens per device")
    assert per_device.verdict == "correct" and claim_value(per_device.computed) == pytest.approx(10**7 / 256, abs=1)
    memory = one_claim(checks, "Per-device memory is O(n^2/P)")
    assert memory.verdict == "misleading"
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
    assert one_claim(checks, "Mixtral 8x7B combines the same sliding window").verdict == "wrong"
    assert claim_value(one_claim(checks, "total parameter count 47B").computed) == pytest.approx(46.7e9, rel=2e-3)
    assert claim_value(one_claim(checks, "active parameters 13B").computed) == pytest.approx(12.9e9, rel=2e-3)
    pages = one_claim(checks, "roughly 7,500 pages")
    assert pages.verdict == "wrong" and claim_value(pages.computed) == pytest.approx(10**7 * 1382 / 732_000, abs=1)
    assert one_claim(checks, ">99.7% needle").verdict == "misleading"
    assert one_claim(checks, "LLaMA 3 70B / 405B: 128K").verdict == "misleading"
    assert one_claim(checks, "64/8 = 8x").verdict == "correct"
    assert one_claim(checks, "far cheaper than training from scratch").verdict == "misleading"


def test_reused_claims_keep_their_chapters_verdicts(checks):
    """Taken from chapters 1-3, not recomputed: the same objects' verdicts."""
    assert one_claim(checks, "4.1e20 FLOPs for one layer").verdict == "wrong"
    assert one_claim(checks, "64 layers need about 2.6e22").verdict == "wrong"
    assert one_claim(checks, "without GQA (64 KV heads)").verdict == "correct"
    assert one_claim(checks, "receptive field = L x w").verdict == "correct"
    assert one_claim(checks, "adjusting the RoPE base at each stage").verdict == "unsupported"


def test_extension_cost_against_hand_arithmetic():
    """Per-token forward FLOPs of a causal sequence: 2 per weight (no embedding lookup) plus 4 H d per attended
    pair, averaged over the sequence's n(n+1)/2 pairs per head and layer."""
    e = ch07.extension_cost(ch07.LLAMA31_405B, short=8192, long=131_072)
    layers, heads, d, h, inter, kv, vocab = 126, 128, 128, 16384, 53248, 8, 128_256
    weights = layers * (h * heads * d * 2 + h * kv * d * 2 + 3 * h * inter) + h * vocab

    def per_token(n):
        return 2 * weights + 4 * heads * d * layers * (n + 1) / 2

    assert e["per_token_short"] == pytest.approx(per_token(8192), rel=1e-3)
    assert e["ratio"] == pytest.approx(per_token(131_072) / per_token(8192), rel=1e-3)
    assert 1 < e["ratio"] < ch07.extension_cost(ch07.LLAMA31_8B)["ratio"]  # the smaller model gains more
