"""Rolling-buffer KV cache: decoding token by token through w slots equals full attention with
the sliding-window mask (naive float64 reference and SDPA with an explicit mask)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.masks import sliding_window_mask
from longctx_lab.attention.reference import naive_attention
from longctx_lab.core import cost
from longctx_lab.kvcache.rolling import RollingKVCache, decode_with_rolling_cache, rolling_memory_table, rolling_slot


def qkv(batch, heads, kv_heads, n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, n, d, generator=g, dtype=dtype),
            torch.randn(batch, kv_heads, n, d, generator=g, dtype=dtype),
            torch.randn(batch, kv_heads, n, d, generator=g, dtype=dtype))


@given(n=st.integers(1, 40), w=st.integers(1, 12), batch=st.integers(1, 2), kv_heads=st.integers(1, 2),
       group=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_decoding_through_the_rolling_buffer_equals_window_attention(n, w, batch, kv_heads, group, seed):
    q, k, v = qkv(batch, kv_heads * group, kv_heads, n, 8, seed)
    out = decode_with_rolling_cache(q, k, v, w)
    ref = naive_attention(q, k, v, causal=True, window=w)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    mask = sliding_window_mask(n, w)
    sdpa = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                                          attn_mask=mask)
    torch.testing.assert_close(out, sdpa, rtol=1e-12, atol=1e-12)


def test_decoding_differs_from_full_causal_once_the_window_is_exceeded():
    q, k, v = qkv(1, 2, 2, 12, 8, 0)
    out = decode_with_rolling_cache(q, k, v, 4)
    full = naive_attention(q, k, v, causal=True)
    torch.testing.assert_close(out[:, :, :4], full[:, :, :4], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out[:, :, 4:], full[:, :, 4:])


@given(n=st.integers(1, 50), w=st.integers(1, 9))
def test_slots_hold_the_last_w_positions(n, w):
    cache = RollingKVCache(w, batch=1, kv_heads=1, head_dim=2, dtype=torch.float64)
    for t in range(n):
        x = torch.full((1, 1, 1, 2), float(t), dtype=torch.float64)
        cache.append(x, -x)
        assert rolling_slot(t, w) == t % w
        assert cache.positions[t % w] == t
        k, v, pos = cache.contents()
        assert sorted(pos.tolist()) == list(range(max(0, t - w + 1), t + 1))
        assert torch.equal(k[0, 0, :, 0], pos.double()) and torch.equal(v[0, 0, :, 0], -pos.double())
    assert cache.length == n and cache.filled == min(n, w)


@given(chunks=st.lists(st.integers(1, 7), min_size=1, max_size=6), w=st.integers(1, 6))
def test_appending_chunks_equals_appending_one_by_one(chunks, w):
    n = sum(chunks)
    _, k, v = qkv(1, 1, 1, n, 4, 3)
    a = RollingKVCache(w, batch=1, kv_heads=1, head_dim=4, dtype=torch.float64)
    b = RollingKVCache(w, batch=1, kv_heads=1, head_dim=4, dtype=torch.float64)
    start = 0
    for c in chunks:
        a.append(k[:, :, start:start + c], v[:, :, start:start + c])
        start += c
    for t in range(n):
        b.append(k[:, :, t:t + 1], v[:, :, t:t + 1])
    assert torch.equal(a.k, b.k) and torch.equal(a.v, b.v) and torch.equal(a.positions, b.positions)


def test_memory_is_fixed_and_matches_the_cost_model():
    cache = RollingKVCache(16, batch=2, kv_heads=4, head_dim=8, dtype=torch.float16)
    before = cache.nbytes
    x = torch.zeros(2, 4, 100, 8, dtype=torch.float16)
    cache.append(x, x)
    assert cache.nbytes == before == cost.kv_cache_bytes(16, n_layers=1, n_kv_heads=4, head_dim=8, dtype="fp16",
                                                         batch=2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        RollingKVCache(0, batch=1, kv_heads=1, head_dim=4)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        rolling_slot(3, 0)
    with pytest.raises(ValueError, match="position must be an integer >= 0, got -1"):
        rolling_slot(-1, 4)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype"):
        RollingKVCache(4, batch=1, kv_heads=1, head_dim=4, dtype=torch.int32)
    cache = RollingKVCache(4, batch=1, kv_heads=2, head_dim=4, dtype=torch.float64)
    with pytest.raises(ValueError, match="the cache is empty"):
        cache.attend(torch.zeros(1, 2, 1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"k_new must have shape \(1, 2, t>=1, 4\)"):
        cache.append(torch.zeros(1, 3, 1, 4, dtype=torch.float64), torch.zeros(1, 3, 1, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="k_new must be torch.float64"):
        cache.append(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    cache.append(torch.zeros(1, 2, 1, 4, dtype=torch.float64), torch.zeros(1, 2, 1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="q holds q_len=2 queries, but sequence 0 has only 1 tokens"):
        cache.attend(torch.zeros(1, 2, 2, 4, dtype=torch.float64))
    q, k, v = qkv(1, 1, 1, 5, 4, 0)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        decode_with_rolling_cache(q, k, v, 0)
    with pytest.raises(ValueError, match="same sequence length"):
        decode_with_rolling_cache(q[:, :, :3], k, v, 2)


def test_memory_table():
    rows = rolling_memory_table([1000, 4096, 10_000], window=4096, n_layers=32, n_kv_heads=8, head_dim=128)
    per_token = 2 * 32 * 8 * 128 * 2
    assert [r["full_bytes"] for r in rows] == [1000 * per_token, 4096 * per_token, 10_000 * per_token]
    assert [r["rolling_bytes"] for r in rows] == [1000 * per_token, 4096 * per_token, 4096 * per_token]
    assert rows[0]["saved"] == 0 and rows[1]["saved"] == 0
    assert rows[2]["saved"] == pytest.approx(1 - 4096 / 10_000)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        rolling_memory_table([10], window=0, n_layers=1, n_kv_heads=1, head_dim=1)
    with pytest.raises(TypeError, match="seq_lens must be a sequence"):
        rolling_memory_table(10, window=4, n_layers=1, n_kv_heads=1, head_dim=1)
