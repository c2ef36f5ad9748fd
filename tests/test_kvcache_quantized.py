"""Quantized KV cache: int8/int4, per-token and per-channel scales, KIVI's layout with a recent window.

The error bound the tests hold the cache to, derived from the quantization step. A value quantized in
a group with absmax ``a`` is off by at most half a step, ``delta = a / (2 * qmax)`` (``qmax`` 127 or 7), and
a value in the full-precision recent window is exact. The test computes every ``delta`` itself, in
float64, from the recorded history and the documented grouping. For attention, with ``p`` the exact
softmax weights over the keys query ``i`` sees and ``p'`` those over the quantized keys, the output error
in channel ``c`` is

    |sum_j p'_j v'_jc - sum_j p_j v_jc| <= max_j dv_jc + tanh(eps_i / 2) * (max_j v_jc - min_j v_jc),
    eps_i = scale * max_j sum_c |q_ic| dk_jc.

Split it as ``sum_j p'_j (v'_jc - v_jc)`` (at most ``max_j dv_jc``) plus ``sum_j (p'_j - p_j) v_jc``. Every score
moves by at most ``eps_i``, so ``p'_j = p_j e^{d_j} / Z`` with ``|d_j| <= eps_i``; the mass ``p'`` gains on the
keys where it grows is largest when ``d = +eps_i`` there and ``-eps_i`` elsewhere, and at most
``tanh(eps_i / 2)``; as ``p' - p`` sums to 0, the second part is at most that mass times the range of the
values. On top: float32 rounding of the attention (chapter 4's float32 tolerance).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from kvcache_driver import TOL, drive

from longctx_lab.attention.masks import build_mask
from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.cost import kv_cache_bytes
from longctx_lab.kvcache import QuantizedKVCache, dequantize, quantize, quantized_kv_cache_bytes

CAPACITY = 20


def half_steps(x, *, bits, axis, group, residual):
    """Largest error each value of ``x`` ``(kv_heads, L, d)`` may have in the cache: half a step if quantized
    (plus float32 rounding of the scale and the product), 0 in the recent window."""
    kv_heads, n, d = x.shape
    g = group if axis == "channel" else 1
    quantized = g * (max(0, n - residual) // g)
    top = 2 ** (bits - 1) - 1
    allowed = torch.zeros_like(x)
    if quantized:
        old = x[:, :quantized].abs()
        if axis == "token":
            absmax = old.amax(dim=-1, keepdim=True).expand_as(old)
        else:
            absmax = old.reshape(kv_heads, quantized // g, g, d).amax(dim=2, keepdim=True)
            absmax = absmax.expand(kv_heads, quantized // g, g, d).reshape(kv_heads, quantized, d)
        allowed[:, :quantized] = absmax / (2 * top) * (1 + 1e-5) + 1e-6 * old
    return allowed


def attention_error_bound(q, k, v, dk, dv, window):
    """The module docstring's bound; ``q`` ``(heads, q_len, d)``, the others ``(kv_heads, L, d)``."""
    heads, q_len, d = q.shape
    group = heads // k.shape[0]
    k_err, v_err, vals = (t.repeat_interleave(group, dim=0) for t in (dk, dv, v))
    n = k.shape[1]
    mask = build_mask(q_len, n, causal=True, window=window)  # (q_len, L), True = visible
    eps = (q.abs() @ k_err.transpose(-1, -2)) / math.sqrt(d)  # (heads, q_len, L): score error bound per key
    eps = eps.masked_fill(~mask, 0).amax(dim=-1, keepdim=True)
    hidden = ~mask[None, :, :, None]
    worst_v_err = v_err[:, None].expand(heads, q_len, n, d).masked_fill(hidden, 0).amax(dim=2)
    values = vals[:, None].expand(heads, q_len, n, d)
    spread = values.masked_fill(hidden, -math.inf).amax(dim=2) - values.masked_fill(hidden, math.inf).amin(dim=2)
    return worst_v_err + torch.tanh(eps / 2) * spread


def bounded_check(cache, history, q, ids, window, out):
    params = {"bits": cache.bits, "group": cache.group_size, "residual": cache.residual}
    for i, s in enumerate(ids):
        hk, hv = history.k[s], history.v[s]
        dk = half_steps(hk, axis=cache.key_axis, **params)
        dv = half_steps(hv, axis=cache.value_axis, **params)
        gk, gv = cache.gather([s])
        assert ((gk[0].double() - hk).abs() <= dk).all(), "a cached key is off by more than half its step"
        assert ((gv[0].double() - hv).abs() <= dv).all(), "a cached value is off by more than half its step"
        # the cache attends over what it holds: float32 attention vs float64 over the same (dequantized) values
        ref_held = naive_attention(q[i:i + 1].double(), gk.double(), gv.double(), causal=True, window=window)
        torch.testing.assert_close(out[i:i + 1].double(), ref_held, **TOL[torch.float32])
        # ... and within the derived bound of full-precision attention over the recorded history
        ref = naive_attention(q[i:i + 1].double(), hk[None], hv[None], causal=True, window=window)[0]
        bound = attention_error_bound(q[i].double(), hk, hv, dk, dv, window)
        err = (out[i].double() - ref).abs()
        assert (err <= bound + TOL[torch.float32]["atol"] + TOL[torch.float32]["rtol"] * ref.abs()).all(), (
            f"error {err.max():.3g} exceeds the bound (max {bound.max():.3g})"
        )


@given(data=st.data(), batch=st.integers(1, 3), kv_heads=st.integers(1, 2), group=st.integers(1, 2),
       bits=st.sampled_from([8, 4]), key_axis=st.sampled_from(["token", "channel"]),
       value_axis=st.sampled_from(["token", "channel"]), group_size=st.integers(1, 4), residual=st.integers(0, 5))
def test_random_programs_stay_within_the_quantization_bound(data, batch, kv_heads, group, bits, key_axis, value_axis,
                                                            group_size, residual):
    cache = QuantizedKVCache(CAPACITY, batch=batch, kv_heads=kv_heads, head_dim=16, bits=bits, key_axis=key_axis,
                             value_axis=value_axis, group_size=group_size, residual=residual)
    drive(data, cache, heads=kv_heads * group, capacity=CAPACITY, max_new=7, max_q=4, windows=[None, 3],
          check=bounded_check)
    assert cache.nbytes == quantized_kv_cache_bytes(CAPACITY, n_kv_heads=kv_heads, head_dim=16, bits=bits,
                                                    key_axis=key_axis, value_axis=value_axis, group_size=group_size,
                                                    residual=residual, dtype=torch.float32, batch=batch)


@given(bits=st.sampled_from([8, 4]), axis=st.sampled_from(["token", "channel"]), group=st.integers(1, 4),
       groups=st.integers(1, 4), seed=st.integers(0, 10_000), dtype=st.sampled_from([torch.float32, torch.float16]))
def test_quantize_is_within_half_a_step_and_uses_the_whole_grid(bits, axis, group, groups, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    # channel scales from 0.1 to 10: outlier channels, as keys have
    x = (torch.randn(2, group * groups, 8, generator=g, dtype=torch.float64) * torch.logspace(-1, 1, 8)).to(dtype)
    codes, scales = quantize(x, bits=bits, axis=axis, group_size=group)
    assert codes.dtype == (torch.int8 if bits == 8 else torch.uint8)
    assert codes.shape == (2, group * groups, 8 if bits == 8 else 4)
    back = dequantize(codes, scales, bits=bits, axis=axis, group_size=group)
    assert back.shape == x.shape and back.dtype == dtype
    xd, bd = x.double(), back.double()
    eps = 1e-5 if dtype == torch.float32 else 2e-3  # rounding of the stored scale and of code * scale
    allowed = half_steps(xd, bits=bits, axis=axis, group=group, residual=0) / (1 + 1e-5) * (1 + eps) + eps * xd.abs()
    assert ((bd - xd).abs() <= allowed).all()
    # the largest value of each group lands on the grid's end, +-qmax steps: no level is wasted
    if axis == "token":
        top, top_back = xd.abs().amax(-1), bd.abs().amax(-1)
    else:
        top = xd.abs().reshape(2, groups, group, 8).amax(2)
        top_back = bd.abs().reshape(2, groups, group, 8).amax(2)
    torch.testing.assert_close(top_back, top, rtol=eps, atol=0)


def test_per_channel_keys_beat_per_token_keys_with_an_outlier_channel():
    """KIVI's observation, measured: a channel with 20x larger keys inflates every per-token scale."""
    g = torch.Generator().manual_seed(0)
    k = torch.randn(1, 2, 64, 16, generator=g)
    k[..., 3] *= 20
    errors = {}
    for axis in ("token", "channel"):
        cache = QuantizedKVCache(64, batch=1, kv_heads=2, head_dim=16, bits=4, key_axis=axis, group_size=16)
        cache.append(k, k)
        errors[axis] = (cache.gather([0])[0] - k).abs().mean().item()
    assert errors["channel"] < errors["token"] / 2, errors


def test_kivi_keeps_the_recent_window_exact_and_quantizes_whole_groups():
    g = torch.Generator().manual_seed(1)
    cache = QuantizedKVCache.kivi(64, batch=1, kv_heads=1, head_dim=16, bits=4, group_size=4, residual=6)
    assert (cache.key_axis, cache.value_axis) == ("channel", "token")
    x = torch.randn(1, 1, 13, 16, generator=g)
    for t in range(13):  # token by token, as in decoding
        cache.append(x[:, :, t:t + 1], x[:, :, t:t + 1])
    k, v = cache.gather([0])
    # keys: 13 - 6 = 7 old tokens, one whole group of 4 quantized; values: the 7 old tokens quantized
    assert torch.equal(k[0, 0, 4:], x[0, 0, 4:]) and not torch.equal(k[0, 0, :4], x[0, 0, :4])
    assert torch.equal(v[0, 0, 7:], x[0, 0, 7:]) and not torch.equal(v[0, 0, :7], x[0, 0, :7])
    one_shot = QuantizedKVCache.kivi(64, batch=1, kv_heads=1, head_dim=16, bits=4, group_size=4, residual=6)
    one_shot.append(x, x)  # a prefill of 13 tokens ends in the same state
    assert all(torch.equal(a, b) for a, b in zip(one_shot.gather([0]), (k, v), strict=True))


def test_bytes_formula_by_hand():
    # int4, per-token fp16 scales, head_dim 128, 8 KV heads, 1000 tokens: codes 2 (K, V) * 8 * 1000 * 128 / 2 bytes
    # = 1,024,000; scales 2 * 8 * 1000 * 2 bytes = 32,000
    assert quantized_kv_cache_bytes(1000, n_kv_heads=8, head_dim=128, bits=4, dtype="fp16") == 1_056_000
    # KIVI int8, 2 KV heads, head_dim 64, 1024 tokens, groups of 32, residual 128, fp16:
    # K: codes 2*1024*64 = 131,072; scales 1024/32 * 2*64 * 2 B = 8,192; recent (128 + 31) * 2*64 * 2 B = 40,704
    # V: codes 131,072; scales 1024 * 2 * 2 B = 4,096; recent 128 * 2*64 * 2 B = 32,768
    assert quantized_kv_cache_bytes(1024, n_kv_heads=2, head_dim=64, bits=8, key_axis="channel", group_size=32,
                                    residual=128, dtype="fp16") == 347_904
    cache = QuantizedKVCache.kivi(1024, batch=1, kv_heads=2, head_dim=64, bits=8, dtype=torch.float16)
    assert cache.nbytes == 347_904
    # int8 with per-token scales: half of the fp16 cache, plus one fp16 scale per 128 values
    ratio = quantized_kv_cache_bytes(4096, n_kv_heads=8, head_dim=128, bits=8) / kv_cache_bytes(
        4096, n_layers=1, n_kv_heads=8, head_dim=128, dtype="fp16")
    assert ratio == pytest.approx((1 + 2 / 128) / 2)


def test_bad_arguments():
    shape = {"batch": 1, "kv_heads": 1, "head_dim": 16}
    with pytest.raises(ValueError, match=r"bits must be one of \(8, 4\), got 3"):
        QuantizedKVCache(8, bits=3, **shape)
    with pytest.raises(TypeError, match="bits must be an integer, got float 8.0"):
        QuantizedKVCache(8, bits=8.0, **shape)
    with pytest.raises(ValueError, match=r"key_axis must be one of \('token', 'channel'\), got 'row'"):
        QuantizedKVCache(8, key_axis="row", **shape)
    with pytest.raises(ValueError, match="group_size must be an integer >= 1, got 0"):
        QuantizedKVCache(8, group_size=0, **shape)
    with pytest.raises(ValueError, match="residual must be an integer >= 0, got -1"):
        QuantizedKVCache(8, residual=-1, **shape)
    with pytest.raises(ValueError, match="head_dim must be even for bits=4 .*got 15"):
        QuantizedKVCache(8, bits=4, batch=1, kv_heads=1, head_dim=15)
    with pytest.raises(ValueError, match="head_dim must be even for bits=4 .*got 15"):
        quantized_kv_cache_bytes(8, n_kv_heads=1, head_dim=15, bits=4)
    with pytest.raises(ValueError, match=r"value_axis must be one of \('token', 'channel'\), got 'head'"):
        quantized_kv_cache_bytes(8, n_kv_heads=1, head_dim=16, value_axis="head")
    with pytest.raises(ValueError, match="x must hold a multiple of group_size=4 tokens for axis='channel', got 6"):
        quantize(torch.zeros(1, 6, 8), axis="channel", group_size=4)
    with pytest.raises(ValueError, match="x must be finite to be quantized .*got 1 non-finite values"):
        quantize(torch.tensor([[[1.0, float("inf")]]]))
    cache = QuantizedKVCache(8, **shape)
    x = torch.ones(1, 1, 2, 16)
    x[0, 0, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="v_new must be finite to be quantized, got 1 non-finite values; nothing"):
        cache.append(torch.ones(1, 1, 2, 16), x)
    assert cache.lengths.tolist() == [0]
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        quantize(torch.zeros(1, 6, 8, dtype=torch.int32))
