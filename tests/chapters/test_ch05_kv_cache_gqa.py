"""Chapter 5: quiz keys, claim verdicts and the chapter's experiments (kv_experiments), against arithmetic done here."""

import math

import pytest
import torch
from claim_helpers import assert_claims_render, assert_quiz_keys, claim_value, one_claim

from longctx_lab.course.claim_sets import ch05_kv_cache_gqa as ch05
from longctx_lab.course.kv_experiments import (
    QUANT_LAYOUTS,
    Request,
    allocation_waste,
    block_layout,
    gqa_variants,
    quantization_sweep,
    request_mix,
)
from longctx_lab.course.quiz import NumericQuestion, Quiz
from longctx_lab.course.quizzes.ch05_kv_cache_gqa import QUIZ
from longctx_lab.kvcache import PagedKVCache


@pytest.fixture(scope="module")
def checks():
    return ch05.claims()


# ---------------------------------------------------------------------------------------------- quiz

def test_quiz_keys_match_hand_arithmetic():
    assert isinstance(QUIZ, Quiz) and len(QUIZ.questions) >= 6
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 5 and all(q.computed_by for q in numeric)
    answers = [q.answer for q in numeric]
    assert answers[0] == 2 * 32 * 8 * 128 * 2  # Llama 3.1 8B, bytes per token
    assert answers[1] == pytest.approx(2 * 32 * 8 * 128 * 4096 * 2 / 1e9)  # Mistral: the window, not 32K
    assert answers[2] == 13 // (32 // 8)
    assert answers[3] == math.ceil(100 / 16) * 16 - 100
    assert answers[4] == pytest.approx((128 * 2) / (128 / 2 + 2))
    # Llama 3.1 70B decode at 8K: 2 FLOPs per active weight (minus the embedding lookup) plus attention, over
    # the bytes of those weights and the KV cache of 8,193 tokens
    h, layers, vocab = 8192, 80, 128256
    weights = 70_553_706_496 - vocab * h
    attn = 4 * 64 * 128 * 8193 * layers
    kv = 2 * layers * 8 * 128 * 8193 * 2
    assert answers[5] == pytest.approx((2 * weights + attn) / (2 * weights + kv), rel=2e-3)
    assert_quiz_keys(QUIZ)


# ---------------------------------------------------------------------------------------------- claims

def test_claims_render_with_the_policy(checks):
    assert_claims_render(checks, minimum=15)


def test_the_calculator_and_the_class_run_as_written(checks):
    printed = one_claim(checks, "prints 'KV Cache: 48.83 GB'")
    assert printed.verdict == "wrong"
    assert printed.computed.startswith(f"{2 * 80 * 200_000 * 8192 * 2 / 1024**3:.2f}")  # 488.28
    held = one_claim(checks, "KVCache(200_000, 80, 8192)")
    assert held.verdict == "wrong"
    assert claim_value(held.computed) == pytest.approx(80 * 2 * 200_000 * 8192 * 4 / 2**30, rel=1e-3)  # fp32: 976.56
    run = ch05.run_article_kvcache()
    assert run["allocated_bytes"] == 80 * 2 * 200_000 * 8192 * 4 and run["dtype"] == "float32"
    assert run["seq_len_after_one_token"] == 2  # one token, two layers: the shared counter moved twice
    assert run["layer1_keys"].shape == (2, 4) and run["layer1_zero_rows"] == 1
    assert run["batch2_error"].startswith("RuntimeError")
    assert one_claim(checks, "caches keys and values for autoregressive").verdict == "wrong"


def test_gqa_byte_claims(checks):
    assert one_claim(checks, "prints 'GQA Memory Savings: 87.5%'").verdict == "correct"
    assert (64 - 8) / 64 == 0.875
    factor = one_claim(checks, "reduces the KV cache 64/8 = 8x")
    assert factor.verdict == "correct" and claim_value(factor.computed) == 8
    per_head = 2 * 80 * 128 * 128_000 * 2  # Llama 3 70B, fp16, one KV head, 128,000 tokens
    for words, heads in (("about 335 GB", 64), ("about 42 GB", 8), ("about 5 GB", 1)):
        c = one_claim(checks, words)
        assert c.verdict == "correct"
        assert claim_value(c.computed) == pytest.approx(heads * per_head / 1e9, rel=1e-3)


def test_heads_sketch_and_paging(checks):
    assert one_claim(checks, "GQA (8-16 heads)").verdict == "misleading"
    sketch = one_claim(checks, "Claude 3 Opus (estimated)")
    per_token_layer = 2 * 8 * 128 * 1  # fp8
    assert claim_value(sketch.computed) == pytest.approx((10 * 200_000 + 70 * 4096) * per_token_layer / 1e9, rel=1e-3)
    assert sketch.verdict == "wrong"
    reused = [c for c in checks if c.rule and ("16-32x" in c.claim or "32x with INT4" in c.claim)]
    assert [c.verdict for c in reused] == ["correct", "correct"]
    assert [claim_value(c.computed) for c in reused] == [64 / 8 * 2, 64 / 8 * 4]
    assert one_claim(checks, "third factor").verdict == "misleading"


def test_serving_verdicts_follow_the_exponents():
    model = {c.claim[:25]: c.verdict for c in ch05.serving_claims()}
    assert model["Time-to-first-token scale"] == "wrong"
    assert model["Generation speed is ~cons"] == "misleading"
    assert model["Decoding: the bottleneck "] == "correct"
    assert model["'200K context ≈ 5-10s pre"] == "unsupported"
    assert model["KVCache docstring: cachin"] == "correct"
    # measured exponents decide when given
    linear = {c.claim[:25]: c for c in ch05.serving_claims(prefill_exponent=1.05, decode_exponent=0.02,
                                                            measured_on="here")}
    assert linear["Time-to-first-token scale"].verdict == "misleading"  # linear here, not at 200K (model)
    assert "measured exponent 1.05 (here)" in linear["Time-to-first-token scale"].computed
    assert linear["Generation speed is ~cons"].verdict == "misleading"
    grows = {c.claim[:25]: c.verdict for c in ch05.serving_claims(prefill_exponent=1.6, decode_exponent=0.5)}
    assert grows["Time-to-first-token scale"] == "wrong" and grows["Generation speed is ~cons"] == "wrong"
    with pytest.raises(TypeError, match="prefill_exponent must be a real number"):
        ch05.serving_claims(prefill_exponent="1.0")
    with pytest.raises(TypeError, match="measured_on must be a string"):
        ch05.serving_claims(measured_on=3)


def test_models_against_hand_arithmetic():
    pre = ch05.prefill_model()
    assert pre["seconds"][-1] / pre["seconds"][0] > 100  # superlinear over 100x the tokens
    dec = ch05.decode_model()
    assert dec["seconds"][-1] > dec["seconds"][0]
    gen = ch05.generation_complexity()
    n = gen["contexts"][-1]
    assert gen["recompute"][-1] / gen["cached"][-1] == pytest.approx((n + 1) * (n + 2) / 2 / (n + 1))
    assert gen["p_recompute"] == pytest.approx(2, abs=0.02) and gen["p_cached"] == pytest.approx(1, abs=0.02)


# ---------------------------------------------------------------------------------------------- experiments

def test_gqa_variants_scale_with_kv_heads():
    v = gqa_variants("llama-3.1-8b")
    assert [p.n_kv_heads for p in v.values()] == [32, 8, 1]
    assert v["GQA"].kv_bytes_per_sequence == 2 * 32 * 8 * 128 * 131072 * 2
    assert v["MHA"].kv_bytes_per_sequence == 4 * v["GQA"].kv_bytes_per_sequence == 32 * v["MQA"].kv_bytes_per_sequence
    assert len({p.weights_bytes for p in v.values()}) == 3  # k/v projections change with the KV heads


def test_request_mix_is_seeded_and_bounded():
    a, b = request_mix(50, max_len=512, seed=3), request_mix(50, max_len=512, seed=3)
    assert a == b and a != request_mix(50, max_len=512, seed=4)
    assert all(1 <= r.generated <= r.output and r.final <= 512 and r.prompt >= 1 for r in a)
    with pytest.raises(ValueError, match="n_requests must be an integer >= 1, got 0"):
        request_mix(0)


def test_allocation_waste_is_measured_from_the_caches():
    reqs = [Request(10, 20, 5), Request(3, 1, 1), Request(40, 8, 8)]
    w = allocation_waste(reqs, max_len=64, block_size=8, kv_heads=2, head_dim=4)
    per_token = 2 * 2 * 4 * 4  # K and V, 2 heads of 4, float32
    assert w["tokens"] == 15 + 4 + 48 and w["bytes_per_token"] == per_token
    assert w["contiguous_bytes"] == 3 * 64 * per_token
    blocks = 2 + 1 + 6
    assert w["paged_bytes"] == blocks * 8 * per_token and w["paged_slack"] == blocks * 8 - 67
    assert w["reserved"] == 15 + 0 + 0 and w["internal"] == (64 - 30) + (64 - 4) + (64 - 48)
    assert w["contiguous_waste"] == pytest.approx(1 - 67 / (3 * 64))
    assert w["capacity_ratio"] == pytest.approx(3 * 64 / (blocks * 8))
    with pytest.raises(ValueError, match="max_len must hold every request's final length"):
        allocation_waste(reqs, max_len=40)
    with pytest.raises(TypeError, match="requests must be a non-empty list of Request"):
        allocation_waste([], max_len=40)


def test_block_layout_shows_shared_blocks():
    cache = PagedKVCache(4, 8, batch=3, kv_heads=1, head_dim=2)
    cache.append(torch.zeros(1, 1, 6, 2), torch.zeros(1, 1, 6, 2), seq_ids=[0])
    cache.fork(0, 1)
    cache.append(torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2), seq_ids=[1])  # copy-on-write of block 1
    layout = block_layout(cache)
    assert layout[cache.blocks_of(0)[0]] == {"owners": (0, 1), "filled": 4}
    assert layout[cache.blocks_of(0)[1]] == {"owners": (0,), "filled": 2}
    assert layout[cache.blocks_of(1)[1]] == {"owners": (1,), "filled": 3}
    with pytest.raises(TypeError, match="cache must be a PagedKVCache"):
        block_layout("cache")


def test_quantization_sweep_bytes_and_order():
    rows = quantization_sweep(n_tokens=128, heads=4, kv_heads=2, head_dim=32, n_queries=2)
    assert [r["layout"] for r in rows] == [label for label, _ in QUANT_LAYOUTS]
    by = {r["layout"]: r for r in rows}
    fp16 = 2 * 2 * 128 * 32 * 2
    assert by["fp16 (no quantization)"]["bytes"] == fp16
    assert by["int8 per-token"]["bytes"] == 2 * 2 * 128 * (32 + 2)  # codes + one fp16 scale per token and head
    assert by["int4 per-token"]["bytes"] == 2 * 2 * 128 * (16 + 2)
    assert by["int8 per-token"]["error"] < by["int4 per-token"]["error"]
    assert by["int4 per-channel"]["key_error"] < by["int4 per-token"]["key_error"]  # outlier channels
    with pytest.raises(ValueError, match="n_queries must be <= n_tokens"):
        quantization_sweep(n_tokens=4, n_queries=5)


def test_draw_paged_cache_draws_every_block():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longctx_lab.course.kv_plots import draw_paged_cache

    cache = PagedKVCache(4, 6, batch=2, kv_heads=1, head_dim=2)
    cache.append(torch.zeros(1, 1, 5, 2), torch.zeros(1, 1, 5, 2), seq_ids=[0])
    ax_pool, ax_tables = draw_paged_cache(cache, per_row=3)
    assert len(ax_pool.patches) == 6 * (4 + 1)  # one cell per slot plus the block's frame
    assert [t.get_text() for t in ax_tables.texts] == ["seq 0 (5 tokens): blocks [0, 1]"]
    plt.close("all")
    with pytest.raises(TypeError, match="cache must be a PagedKVCache"):
        draw_paged_cache(None)


def test_recorded_cpu_measurements_decide_the_serving_verdicts():
    from longctx_lab.cli.bench import decode_cpu

    recorded = decode_cpu.load_decode_results()  # the copy shipped with the package
    inputs = decode_cpu.claim_inputs(recorded)
    got = {c.claim[:25]: c for c in ch05.serving_claims(**inputs)}
    p, q = recorded["fits"]["prefill"]["exponent"], recorded["fits"]["cached_decode"]["exponent"]
    expected_ttft = "wrong" if p > 1.1 else "misleading"  # the model's 70B exponent (1.22) is superlinear
    expected_speed = "misleading" if q < 0.1 else "wrong"
    assert got["Time-to-first-token scale"].verdict == expected_ttft
    assert got["Generation speed is ~cons"].verdict == expected_speed
    assert f"measured exponent {p:.2f}" in got["Time-to-first-token scale"].computed
    assert inputs["measured_on"] in got["Generation speed is ~cons"].computed


def test_decode_kernel_source_is_read_from_the_kernel_file():
    from longctx_lab.course.decode_walkthrough import DECODE_KERNEL_FILE, decode_kernel_names, decode_kernel_source

    names = decode_kernel_names()
    assert names[:2] == ["decode_split_kernel", "decode_merge_kernel"]
    src = decode_kernel_source("decode_merge_kernel")
    assert src.startswith("@triton.jit\ndef decode_merge_kernel(") and src in DECODE_KERNEL_FILE.read_text()
    with pytest.raises(ValueError, match="name must be one of"):
        decode_kernel_source("nope")
    with pytest.raises(TypeError, match="name must be a string"):
        decode_kernel_source(3)


@pytest.mark.slow
def test_interpreted_decode_kernel_matches_the_cache():
    from longctx_lab.course.decode_walkthrough import run_decode_interpreted

    g = torch.Generator().manual_seed(0)
    cache = PagedKVCache(16, 6, batch=2, kv_heads=2, head_dim=16)
    for s, n in enumerate((21, 4)):
        cache.append(torch.randn(1, 2, n, 16, generator=g), torch.randn(1, 2, n, 16, generator=g), seq_ids=[s])
    q = torch.randn(2, 4, 1, 16, generator=g)
    out, lse, backend = run_decode_interpreted(q, cache.k_pool, cache.v_pool, cache.lengths,
                                               block_table=cache.block_table, num_splits=2)
    assert backend == "triton-interpreter" and lse.shape == (2, 4, 1)
    torch.testing.assert_close(out, cache.attend(q), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="q must be a CPU tensor"):
        run_decode_interpreted(q.to("meta"), cache.k_pool, cache.v_pool, cache.lengths)
