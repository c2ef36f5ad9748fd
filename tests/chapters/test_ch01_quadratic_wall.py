"""Chapter 1's claim verdicts, each checked against arithmetic done here (the policy: tests/test_claims.py)."""


import pytest
from claim_helpers import claim_value, one_claim

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


# --- chapter 3 ------------------------------------------------------------------------------------
