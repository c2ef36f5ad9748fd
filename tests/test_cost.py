"""longctx_lab.core.cost against brute force (dense masks, explicit formulas) and bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.masks import build_mask
from longctx_lab.core import cost
from longctx_lab.core.configs import H100_SXM, LLAMA3_70B, MISTRAL_7B


@given(q_len=st.integers(1, 40), extra=st.integers(0, 40), causal=st.booleans(),
       window=st.one_of(st.none(), st.integers(1, 50)), longer_q=st.booleans())
def test_attended_pairs_equals_dense_mask_count(q_len, extra, causal, window, longer_q):
    kv_len = q_len + extra
    if longer_q:
        q_len, kv_len = kv_len, q_len
    mask = build_mask(q_len, kv_len, causal=causal, window=window)
    expected = q_len * kv_len if mask is None else int(mask.sum())
    assert cost.attended_pairs(q_len, kv_len, causal=causal, window=window) == expected


def test_attended_pairs_closed_forms_at_scale():
    n, w = 200_000, 4096
    assert cost.attended_pairs(n, causal=True) == n * (n + 1) // 2
    assert cost.attended_pairs(n, causal=True, window=w) == n * w - w * (w - 1) // 2
    assert cost.attended_pairs(n, window=w) == n * (2 * w - 1) - w * (w - 1)
    assert cost.attended_pairs(10**9, causal=True) == 10**9 * (10**9 + 1) // 2  # exact integers, no float


def test_attention_flops_formula():
    assert cost.attention_flops(4, 8) == 4 * 8 * 16
    assert cost.attention_flops(4, 8, causal=True) == 4 * 8 * 10
    assert cost.attention_flops(1024, 64, n_heads=8, batch=2) == 4 * 2 * 8 * 64 * 1024**2
    fwd = cost.attention_flops(1024, 64, n_heads=8)
    assert cost.attention_flops(1024, 64, n_heads=8, backward=True) == fwd * 5 // 2


def test_kv_cache_bytes_matches_hand_arithmetic():
    # Llama 3 70B at 131072 tokens, bf16: 2 * 80 * 8 * 128 * 131072 * 2
    assert cost.kv_cache_bytes_for(LLAMA3_70B, 131072, dtype="bf16") == 2 * 80 * 8 * 128 * 131072 * 2
    # a sliding-window model keeps only `window` tokens
    assert cost.kv_cache_bytes_for(MISTRAL_7B, 10**6) == cost.kv_cache_bytes_for(MISTRAL_7B, 4096)
    assert cost.kv_cache_bytes(10, n_layers=1, n_kv_heads=1, head_dim=2, dtype="int4") == 20
    assert cost.kv_cache_bytes(10, n_layers=1, n_kv_heads=1, head_dim=2, dtype=torch.float32) == 160


def test_attention_matrix_bytes():
    assert cost.attention_matrix_bytes(200_000, dtype="fp16") == 80 * 10**9
    assert cost.attention_matrix_bytes(3, dtype="fp32", n_heads=2, batch=5, kv_len=7) == 3 * 7 * 2 * 5 * 4


def test_roofline_and_intensity():
    ridge = H100_SXM.ridge_intensity
    assert cost.roofline(ridge / 10, peak_flops=H100_SXM.peak_flops_16bit, bandwidth=H100_SXM.hbm_bandwidth) == \
        pytest.approx(H100_SXM.peak_flops_16bit / 10)
    assert cost.roofline(ridge * 10, peak_flops=1.0, bandwidth=1.0) == 1.0
    assert cost.matmul_intensity(1, 4096, 4096, dtype="bf16") < 1.0  # decode-shaped matmul
    assert cost.matmul_intensity(4096, 4096, 4096, dtype="bf16") == pytest.approx(4096 / 3)
    assert cost.arithmetic_intensity(10, 4) == 2.5


def test_decode_is_memory_bound_and_prefill_turns_quadratic():
    step = cost.decode_step(LLAMA3_70B, 8192)
    assert step["intensity"] < H100_SXM.ridge_intensity / 50
    short = cost.prefill_flops(LLAMA3_70B, 2_000)
    long = cost.prefill_flops(LLAMA3_70B, 200_000)
    assert 100 < long / short < 100 * 100  # super-linear, sub-quadratic over this range
    assert cost.decode_step(LLAMA3_70B, 128_000)["bytes"] > cost.decode_step(LLAMA3_70B, 1_000)["bytes"]


@given(budget=st.integers(0, 10**14), heads=st.integers(1, 64), size=st.sampled_from([1, 2, 4]))
def test_max_seq_len_within_is_the_exact_boundary(budget, heads, size):
    n = cost.max_seq_len_within(budget, lambda n: n * n * heads * size)
    assert n * n * heads * size <= budget
    assert (n + 1) * (n + 1) * heads * size > budget


def test_fmt_bytes_prints_both_units():
    assert cost.fmt_bytes(2**30) == "1 GiB (1.074 GB)"
    assert cost.fmt_bytes(0) == "0 B"


@pytest.mark.parametrize("call, exc, words", [
    (lambda: cost.attended_pairs(0), ValueError, "q_len must be an integer >= 1, got 0"),
    (lambda: cost.attended_pairs(4.0), TypeError, "q_len must be an integer"),
    (lambda: cost.attended_pairs(4, window=0, causal=True), ValueError, "window must be an integer >= 1, got 0"),
    (lambda: cost.attended_pairs(4, causal=1), TypeError, "causal must be a bool"),
    (lambda: cost.attention_flops(4, -1), ValueError, "head_dim must be an integer >= 1, got -1"),
    (lambda: cost.kv_cache_bytes(-5, n_layers=1, n_kv_heads=1, head_dim=1), ValueError, "seq_len"),
    (lambda: cost.kv_cache_bytes(5, n_layers=1, n_kv_heads=1, head_dim=1, dtype="fp12"), ValueError, "dtype"),
    (lambda: cost.kv_cache_bytes_for("llama", 5), TypeError, "config must be a ModelConfig"),
    (lambda: cost.roofline(1, peak_flops=0, bandwidth=1), ValueError, "peak_flops must be > 0"),
    (lambda: cost.arithmetic_intensity(1, math.nan), ValueError, "bytes_moved must be finite"),
    (lambda: cost.max_seq_len_within(-1, lambda n: n), ValueError, "budget_bytes must be >= 0"),
    (lambda: cost.max_seq_len_within(10, 3), TypeError, "bytes_for_len must be callable"),
    (lambda: cost.max_seq_len_within(10, lambda n: 0), ValueError, "never exceeds"),
])
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()
