"""Attention sinks (StreamingLLM): the sink-window mask rule and the rolling cache with ``sinks=``, against float64
references written independently of the code under test."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.mask_predicates import sink_window_predicate, sliding_window_predicate
from longctx_lab.attention.reference import naive_attention
from longctx_lab.kvcache import RollingKVCache


def _rule(q_len: int, kv_len: int, window: int, sinks: int) -> torch.Tensor:
    """The rule written out with loops: query p (bottom-right aligned) sees p - window < j <= p, and j < sinks."""
    out = torch.zeros(q_len, kv_len, dtype=torch.bool)
    for r in range(q_len):
        p = r + kv_len - q_len
        for j in range(kv_len):
            out[r, j] = j <= p and (p - j < window or j < sinks)
    return out


@given(q_len=st.integers(1, 12), extra=st.integers(0, 12), window=st.integers(1, 14), sinks=st.integers(0, 5))
def test_sink_window_predicate_is_the_rule(q_len, extra, window, sinks):
    kv_len = q_len + extra
    assert torch.equal(sink_window_predicate(window, sinks).dense(q_len, kv_len), _rule(q_len, kv_len, window, sinks))


def test_zero_sinks_is_the_sliding_window():
    assert torch.equal(sink_window_predicate(5, 0).dense(9), sliding_window_predicate(5).dense(9))


@pytest.mark.parametrize(("args", "word"), [((0, 2), "window"), ((3, -1), "sinks"), ((3, 1.5), "sinks")])
def test_sink_window_predicate_bad_input(args, word):
    with pytest.raises((TypeError, ValueError), match=word):
        sink_window_predicate(*args)


def _reference(q, k_all, v_all, window, sinks):
    """float64 attention of the last q_len positions over the whole history with the rule's dense mask."""
    q_len, kv_len = q.shape[2], k_all.shape[2]
    mask = _rule(q_len, kv_len, window, sinks)
    return naive_attention(q.double(), k_all.double(), v_all.double(), mask=mask)


@given(window=st.integers(1, 9), sinks=st.integers(0, 4), chunk=st.integers(1, 5),
       steps=st.lists(st.integers(1, 5), min_size=1, max_size=8), group=st.sampled_from([1, 3]))
def test_rolling_cache_with_sinks_matches_float64_reference(window, sinks, chunk, steps, group):
    torch.manual_seed(0)
    kv_heads, d = 2, 8
    cache = RollingKVCache(window, batch=1, kv_heads=kv_heads, head_dim=d, chunk=chunk, sinks=sinks)
    ks, vs = [], []
    for t in steps:
        t = min(t, chunk)
        k, v = torch.randn(1, kv_heads, t, d), torch.randn(1, kv_heads, t, d)
        q = torch.randn(1, kv_heads * group, t, d)
        cache.append(k, v)
        ks.append(k)
        vs.append(v)
        got = cache.attend(q)
        want = _reference(q, torch.cat(ks, 2), torch.cat(vs, 2), window, sinks)
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    length = sum(k.shape[2] for k in ks)
    k_kept, _ = cache.gather([0])
    assert k_kept.shape[2] == min(length, min(sinks, length) + cache.slots)


def test_sink_cache_fork_free_and_bytes():
    torch.manual_seed(1)
    cache = RollingKVCache(3, batch=2, kv_heads=1, head_dim=4, sinks=2)
    assert cache.nbytes == 2 * (2 * 3 * 4 + 2 * 2 * 4) * 4  # K and V, 2 slots: 3 window + 2 sink rows of 4 floats
    k = torch.randn(1, 1, 1, 4)
    for _ in range(6):
        cache.append(k, k, [0])
        k = torch.randn(1, 1, 1, 4)
    cache.fork(0, 1)
    q = torch.randn(1, 1, 1, 4).expand(2, 1, 1, 4).contiguous()
    out = cache.attend(q)
    torch.testing.assert_close(out[1], out[0])  # the fork holds the same history, sinks included
    cache.free(1)
    assert cache.lengths.tolist() == [6, 0] and not cache.sink_k[1].any()


def test_sink_cache_bad_input():
    with pytest.raises(ValueError, match="sinks"):
        RollingKVCache(4, batch=1, kv_heads=1, head_dim=4, sinks=-1)
    cache = RollingKVCache(4, batch=1, kv_heads=1, head_dim=4, sinks=1)
    cache.append(torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4))
    with pytest.raises(ValueError, match="q_len"):
        cache.attend(torch.randn(1, 1, 3, 4))
    with pytest.raises(ValueError, match="window"):
        cache.attend(torch.randn(1, 1, 1, 4), window=9)
