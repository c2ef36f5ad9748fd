"""Claim checks: one tolerance policy, computed from the stated text; the verdicts of every chapter's
claims, checked against arithmetic done here by hand (not against the claim sets' own expressions)."""

import math
import re

import pytest

from longctx_lab.claim_sets import ch01_quadratic_wall as ch01
from longctx_lab.claim_sets import ch02_rope_scaling as ch02
from longctx_lab.claim_sets import ch03_sliding_window_sparse as ch03
from longctx_lab.claim_sets import ch04_flash_attention as ch04
from longctx_lab.claims import (
    SEED_ARCHITECTURE,
    TOLERANCE_POLICY,
    ClaimCheck,
    check_number,
    check_printed,
    check_statement,
    parse_stated,
    show_claims,
)

S = SEED_ARCHITECTURE


def _value(text: str) -> float:
    """The number at the start of a ``computed``/``stated`` cell ("5,120 GB" -> 5120.0)."""
    m = re.match(r"\s*([\d,]*\.?\d+(?:e[+-]?\d+)?)", text)
    assert m, text
    return float(m[1].replace(",", ""))


def _one(checks, words):
    found = [c for c in checks if words in c.claim]
    assert len(found) == 1, (words, [c.claim for c in found])
    return found[0]


@pytest.fixture(scope="module")
def all_checks():
    return {"ch01": ch01.claims(), "ch02": ch02.claims(), "ch03": ch03.claims(), "ch04": ch04.claims()}


# --- the policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("42", None, None),  # exact integer: only 42 itself
        ("about 42", (41.5, 41.94, 42.99), (41.49, 43.0)),  # nearest (>= 41.5) or down (< 43)
        ("4.1e20", (4.05e20, 4.19e20), (4.096e17, 4.2e20)),
        ("about 33M", (32.5e6, 33_554_432), (32.4e6, 34e6)),
        ("148.77", (148.765, 148.779), (148.76, 148.78, 149.01)),
        ("400", (350, 390.6, 499), (349, 500, 195.6)),  # trailing zeros are not significant
        ("tens of", (10, 99.9), (9.9, 100, 327.7)),
        ("hundreds of", (100, 999), (99, 1000)),
    ],
)
def test_tolerance_comes_from_the_stated_text(text, inside, outside):
    stated = parse_stated(text)
    if inside is None:
        assert stated.kind == "exact"
        assert check_number("x", stated=text, computed=42, source=S).verdict == "correct"
        assert check_number("x", stated=text, computed=42.000001, source=S, explanation="e").verdict == "wrong"
        return
    for x in inside:
        assert check_number("x", stated=text, computed=x, source=S).verdict == "correct", x
    for x in outside:
        assert check_number("x", stated=text, computed=x, source=S, explanation="off").verdict == "wrong", x


def test_binary_prefixes_read_m_as_2_to_the_20():
    assert parse_stated("4M", binary_prefixes=True).value == 4 * 2**20
    assert parse_stated("16B", binary_prefixes=True).value == 16 * 2**30
    assert parse_stated("4M").value == 4e6
    assert check_number("x", stated="64M", computed=8192**2, source=S, explanation="e").verdict == "wrong"
    assert check_number("x", stated="64M", computed=8192**2, source=S, binary_prefixes=True).verdict == "correct"


def test_exact_integers_show_a_difference_not_a_ratio_of_one():
    c = check_number("x", stated="131,072", computed=131_041, source=S, explanation="one per layer")
    assert c.verdict == "wrong"
    assert c.comparison == "stated - computed = +31"
    assert "stated/computed" not in str(c) and "stated/computed" not in c._repr_html_()
    assert "must be exact" in c.rule


def test_printed_output_is_compared_as_text():
    # the article prints 148.77 for 200,000^2 float32 bytes / 1024^3 = 149.0116...: wrong however close
    assert check_printed("x", stated="148.77", printed="149.01", source=S, explanation="e").verdict == "wrong"
    assert check_printed("x", stated="4.00", printed="4.00", source=S).verdict == "correct"
    assert check_printed("x", stated="4.0", printed="4.00", source=S, explanation="e").verdict == "wrong"
    with pytest.raises(ValueError, match="explanation must say why"):
        check_printed("x", stated="1.0", printed="2.0", source=S)
    with pytest.raises(ValueError, match="printed must be"):
        check_printed("x", stated="1.0", printed=" ", source=S)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="explanation must say why"):
        check_number("x", stated="1", computed=2, source=S)
    with pytest.raises(ValueError, match="text must be a number"):
        check_number("x", stated="lots", computed=2, source=S)
    with pytest.raises(TypeError, match="stated must be"):
        check_number("x", stated=True, computed=1, source=S)
    with pytest.raises(TypeError, match="rel_tol"):  # no hand-picked tolerance any more
        check_number("x", stated="1", computed=1, source=S, rel_tol=0.5)
    with pytest.raises(ValueError, match="verdict must be one of"):
        check_statement("x", verdict="maybe", evidence="e", source="s", explanation="x")
    with pytest.raises(ValueError, match="evidence must be a non-empty"):
        check_statement("x", verdict="wrong", evidence=" ", source="s", explanation="x")
    with pytest.raises(TypeError, match="ClaimCheck"):
        show_claims(["not a claim"])


def test_every_table_states_the_policy(all_checks):
    for checks in all_checks.values():
        table = show_claims(checks)
        assert TOLERANCE_POLICY in str(table)
        html = table._repr_html_()
        assert "<table>" in html and "<tfoot>" in html and "How numbers are judged" in html
    assert "How numbers are judged" in all_checks["ch01"][0]._repr_html_()


def test_every_number_in_every_chapter_follows_the_policy(all_checks):
    numeric = [c for checks in all_checks.values() for c in checks if c.rule]
    assert len(numeric) > 30 and {"must be exact", "rounded to", "snippet output"} <= {
        key for c in numeric for key in ("must be exact", "rounded to", "snippet output") if key in c.rule}
    for chapter, checks in all_checks.items():
        for c in checks:
            assert isinstance(c, ClaimCheck)
            assert c.computed.strip() and c.explanation.strip(), (chapter, c.claim)
            if c.verdict != "correct":
                assert c.explanation != "Matches our computation.", (chapter, c.claim)
            if c.rule:  # a numeric check: a rule was derived, and a miss says how far off
                if c.verdict == "wrong":
                    assert c.comparison, (chapter, c.claim)
                if "must be exact" in c.rule:
                    assert not c.comparison.startswith("stated/computed"), (chapter, c.claim)


# --- chapter 1 ------------------------------------------------------------------------------------


def test_ch01_snippet_outputs_are_compared_with_what_the_code_prints(all_checks):
    checks = all_checks["ch01"]
    for n, shown in ch01.ARTICLE_MATRIX_OUTPUT.items():
        c = _one(checks, f"The code's output for {n:,} tokens")
        by_hand = f"{n * n * 4 / 1024**3:.2f}"
        assert _value(c.computed) == float(by_hand)
        assert c.verdict == ("correct" if shown == by_hand else "wrong")
    assert _one(checks, "200,000 tokens: 148.77").verdict == "wrong"  # 149.01
    assert _one(checks, "2,048 tokens: 0.02").verdict == "correct"
    kv = _one(checks, "48.83")
    assert kv.verdict == "wrong"
    assert kv.computed.startswith(f"{2 * 80 * 200_000 * 8192 * 2 / 1024**3:.2f}")  # 488.28
    assert kv.ratio == pytest.approx(0.1, rel=0.01)
    assert _one(checks, "87.5%").verdict == "correct"


def test_ch01_attention_matrix(all_checks):
    checks = all_checks["ch01"]
    per_layer = _one(checks, "80 GB per layer")
    assert per_layer.verdict == "wrong"  # correct per head, 64x too small per layer
    assert _value(per_layer.computed) == 64 * 200_000**2 * 2 / 1e9
    assert per_layer.ratio == pytest.approx(1 / 64)
    assert f"{200_000**2 * 2 / 1e9:.0f} GB" in per_layer.explanation and "64x" in per_layer.explanation
    for label in ("2,048 tokens: 4M", "8,192 tokens: 64M", "32,768 tokens: 1B", "131,072 tokens: 16B",
                  "200,000 tokens: 40B", "2,048 tokens: 16 MB", "8,192 tokens: 256 MB", "32,768 tokens: 4 GB",
                  "131,072 tokens: 64 GB", "200,000 tokens: 160 GB"):
        assert _one(checks, label).verdict == "correct", label


def test_ch01_kv_cache(all_checks):
    checks = all_checks["ch01"]
    for words, kv_heads in (("about 335 GB", 64), ("about 42 GB", 8), ("about 5 GB", 1)):
        c = _one(checks, words)
        assert c.verdict == "correct"
        assert _value(c.computed) == pytest.approx(2 * 80 * kv_heads * 128 * 128_000 * 2 / 1e9, rel=1e-3)
    tens = _one(checks, "tens of gigabytes")
    assert tens.verdict == "wrong"
    assert _value(tens.computed) == pytest.approx(2 * 80 * 8 * 128 * 10**6 * 2 / 1e9, rel=1e-3)  # 327.7 GB
    # 16x / 32x: GQA (64 -> 8 heads) times INT8 (2 bytes -> 1) or INT4 (-> 0.5); paging adds no factor
    for words, factor in (("16x with INT8", 8 * 2), ("32x with INT4", 8 * 4)):
        c = _one(checks, words)
        assert c.verdict == "correct" and _value(c.computed) == factor
        assert "PagedAttention adds no factor" in c.explanation
    claude = _one(checks, "Claude 3 Opus")
    assert claude.verdict == "wrong" and "unsourced" in claude.claim
    own_design = 2 * 8 * 128 * 1 * (10 * 200_000 + 70 * 4096) / 1e9  # 10 global + 70 windowed layers, fp8
    assert _value(claude.computed) == pytest.approx(own_design, rel=1e-3)
    assert f"{2 * 80 * 8 * 128 * 200_000 / 1e9:.1f} GB" in claude.explanation  # all 80 layers full: 32.8 GB
    weights = _one(checks, "Model weights: ~150GB")
    assert weights.verdict == "wrong" and _value(weights.computed) == 140


def test_ch01_gemini_flops(all_checks):
    checks = all_checks["ch01"]
    n = 10**7
    causal_forward = 4 * 16 * 128 * n * (n + 1) // 2  # Q K^T and P V over n(n+1)/2 pairs
    qk_full = 2 * 16 * n * n * 128  # the article's formula
    one_layer = _one(checks, "4.1e20")
    assert one_layer.verdict == "wrong" and one_layer.ratio == pytest.approx(1000, rel=0.01)
    assert _value(one_layer.computed) == pytest.approx(qk_full)
    assert f"{causal_forward:.2e}" in one_layer.explanation  # 4.10e+17, the same as the formula's value
    assert "8.2e17" not in one_layer.explanation
    layers = _one(checks, "2.6e22")
    assert layers.verdict == "wrong" and _value(layers.computed) == pytest.approx(64 * causal_forward, rel=1e-3)
    assert _one(checks, "4.1e12").verdict == "wrong"
    assert _one(checks, "eight orders of magnitude").verdict == "correct"
    hundreds = _one(checks, "hundreds of TeraFLOPs")
    m = 10**6
    assert hundreds.verdict == "wrong"
    assert _value(hundreds.computed) == pytest.approx(4 * 64 * 128 * m * (m + 1) / 2 / 1e12, rel=1e-3)  # 16,384


def test_ch01_hardware_and_serving(all_checks):
    checks = all_checks["ch01"]
    hbm = _one(checks, "A100 HBM bandwidth")
    assert hbm.verdict == "correct" and "PCIe" in hbm.claim and "2,039" in hbm.explanation
    assert _one(checks, "on-chip slower than HBM").verdict == "wrong"
    assert _one(checks, "Time-to-first-token scales linearly").verdict == "wrong"
    decode = _one(checks, "Generation speed")
    assert decode.verdict == "misleading" and "except the input embedding" in decode.computed


# --- chapter 3 ------------------------------------------------------------------------------------


def test_ch03_receptive_field_under_each_convention(all_checks):
    checks = all_checks["ch03"]
    W, L = 4096, 32
    field = _one(checks, "receptive field = L x w")
    assert field.verdict == "correct" and _value(field.computed) == L * W  # W + 1 keys: W back per layer
    assert f"{L * (W - 1) + 1:,}" in field.explanation  # Hugging Face's W-key window: 131,041 positions
    assert "Hugging Face" in field.explanation and "reference" in field.explanation
    layer1 = _one(checks, "After layer 1")
    assert layer1.verdict == "correct" and _value(layer1.computed) == 50_000 - W
    assert f"{50_000 - (W - 1):,}" in layer1.explanation  # 45,905 under Hugging Face's window
    layer2 = _one(checks, "After layer 2")
    assert layer2.verdict == "correct" and _value(layer2.computed) == 50_000 - 2 * W
    assert f"{50_000 - 2 * (W - 1):,}" in layer2.explanation  # 41,810
    assert "released implementation" not in " ".join(c.explanation for c in checks)


def test_ch03_training_context_and_effective_range(all_checks):
    checks = all_checks["ch03"]
    sees = _one(checks, "effectively 'sees' 131K")
    assert sees.verdict == "misleading"
    assert "8,192-token" in sees.computed and "32,768" in sees.computed  # training length vs HF position limit
    demo = ch03.mistral_effective_range_demo()
    assert demo["n"] == 160 and demo["range_90"] == demo["rows"][-1]["range_90"]  # the chapter's table
    assert f"within {demo['range_90']} positions" in sees.computed
    assert [r["span"] for r in demo["rows"]] == [min(160, (d + 1) * 15 + 1) for d in range(8)]
    context = _one(checks, "'32K' context")
    assert context.verdict == "misleading" and "8,192" in context.computed


def test_ch03_rolling_buffer(all_checks):
    checks = all_checks["ch03"]
    always = _one(checks, "is always 2.1 GB")
    assert always.verdict == "correct" and always.computed.startswith(f"{2 * 4096 * 128 * 32 * 32 * 2 / 1e9:.1f}")
    mistral = _one(checks, "that is Mistral 7B's rolling KV cache")
    assert mistral.verdict == "wrong" and _value(mistral.computed) == pytest.approx(2 * 4096 * 128 * 8 * 32 * 2 / 1e9,
                                                                                     rel=1e-3)
    saved = _one(checks, "saves 100%")
    assert saved.verdict == "correct" and saved.computed.startswith(f"{100 * (1 - 4096 / 2**20):.0f}")
    assert _one(checks, "Two axial passes").verdict == "correct"  # 33,554,432 written as about 33M
    assert _one(checks, "4.3B").verdict == "correct"
    assert _one(checks, "200K^2 = 40B").verdict == "correct"
    assert _one(checks, "decoder LM (causal)").verdict == "wrong"


# --- chapters 2 and 4 -----------------------------------------------------------------------------


def test_ch04_speed_claim_is_correct_against_the_papers_baseline(all_checks):
    speed = _one(all_checks["ch04"], "2-4x faster")
    assert speed.verdict == "correct"
    assert "A100" in speed.explanation and "unfused" in speed.explanation
    memory = _one(all_checks["ch04"], "O(N) memory")
    growth = ch04.backward_memory_growth()
    assert growth["lengths"] == (128, 256, 512, 1024)  # the chapter's plot: one exponent, not two
    assert growth["tiled"] == [4 * (4 * n * 16) + 4 * n for n in growth["lengths"]]  # q, k, v, out + lse, float32
    logs = [(math.log(n), math.log(b)) for n, b in zip(growth["lengths"], growth["naive"], strict=True)]
    mx, my = (sum(v) / len(logs) for v in zip(*logs, strict=True))
    slope = sum((x - mx) * (y - my) for x, y in logs) / sum((x - mx) ** 2 for x, _ in logs)
    assert memory.verdict == "correct" and f"grows as n^{slope:.2f}" in memory.computed
    recompute = _one(all_checks["ch04"], "doubles compute")
    assert recompute.verdict == "wrong" and _value(recompute.computed) == pytest.approx(3.5 / 3, rel=1e-3)


def test_ch02_yarn_temperature(all_checks):
    c = _one(all_checks["ch02"], "YaRN temperature")
    s = 200_000 / 32_768
    assert c.verdict == "wrong" and _value(c.computed) == pytest.approx(1 / (0.1 * math.log(s) + 1) ** 2, rel=1e-3)
    both_limits = [_one(all_checks["ch02"], w) for w in ("base -> infinity", "base -> 0")]
    assert all("theta_0" in c.computed for c in both_limits)
