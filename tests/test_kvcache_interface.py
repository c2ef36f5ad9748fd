"""Every KV cache kind against full attention: random programs of appends, forks and frees (ragged
lengths, GQA, windows) give the float64 naive attention over the same recorded history; caches hold
only KV heads; bytes equal the calculator's formula; bad input raises and changes nothing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from kvcache_driver import TOL, drive, exact_check, poison_unused

import longctx_lab.kvcache.base as kv_base
from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.cost import kv_cache_bytes
from longctx_lab.kvcache import ContiguousKVCache, KVCache, PagedKVCache, QuantizedKVCache, RollingKVCache

CAPACITY = 20
def make(kind, *, batch, kv_heads, head_dim, dtype, window=4, chunk=1, block_size=3):
    shape = {"batch": batch, "kv_heads": kv_heads, "head_dim": head_dim, "dtype": dtype}
    if kind == "contiguous":
        return ContiguousKVCache(CAPACITY, **shape)
    if kind == "rolling":
        return RollingKVCache(window, chunk=chunk, **shape)
    if kind == "paged":
        per_seq = math.ceil(CAPACITY / block_size)
        return PagedKVCache(block_size, batch * per_seq, max_blocks_per_seq=per_seq, **shape)
    raise AssertionError(kind)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@given(data=st.data(), batch=st.integers(1, 4), kv_heads=st.integers(1, 2), group=st.integers(1, 3),
       block_size=st.integers(1, 5))
def test_random_programs_match_full_attention(kind, dtype, data, batch, kv_heads, group, block_size):
    head_dim = data.draw(st.sampled_from([16, 24, 80] if dtype == torch.float32 else [1, 4, 16]), label="head_dim")
    cache = make(kind, batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, block_size=block_size)
    drive(data, cache, heads=kv_heads * group, capacity=CAPACITY, max_new=7, max_q=6, windows=[None, 1, 3, 5],
          check=exact_check, inspect=poison_unused)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@given(data=st.data(), batch=st.integers(1, 4), kv_heads=st.integers(1, 2), group=st.integers(1, 3),
       window=st.integers(1, 6), chunk=st.integers(1, 4))
def test_rolling_random_programs_match_window_attention(dtype, data, batch, kv_heads, group, window, chunk):
    head_dim = data.draw(st.sampled_from([16, 24, 80] if dtype == torch.float32 else [1, 4, 16]), label="head_dim")
    cache = make("rolling", batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, window=window,
                 chunk=chunk)
    smaller = sorted({None, *range(1, window + 1)} - {None}) + [None]
    drive(data, cache, heads=kv_heads * group, capacity=None, max_new=9, max_q=chunk, windows=smaller,
          check=exact_check, inspect=poison_unused, max_ops=12)
    assert cache.nbytes == kv_cache_bytes(window + chunk - 1, n_layers=1, n_kv_heads=kv_heads, head_dim=head_dim,
                                          dtype=dtype, batch=batch)


def test_package_docstring_example_runs():
    import textwrap

    import longctx_lab.kvcache as package

    example = textwrap.dedent(package.__doc__.split("::\n", 1)[1])
    namespace = {}
    exec(compile(example, "longctx_lab/kvcache/__init__.py docstring", "exec"), namespace)
    assert [c.lengths.tolist() for c in namespace["caches"]] == [[6, 6], [6, 6]]


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ragged_batch_one_call(kind, dtype):
    """Sequences of lengths 3, 7 and 1 in one batch; each decode query is its own sequence's last position.
    float16 follows chapter 4's rule: at most 3x the error of SDPA in float16 against float64, + 2e-3."""
    g = torch.Generator().manual_seed(0)
    cache = make(kind, batch=3, kv_heads=2, head_dim=16, dtype=dtype)
    hist = {}
    for s, n in enumerate([3, 7, 1]):
        k, v = torch.randn(1, 2, n, 16, generator=g).to(dtype), torch.randn(1, 2, n, 16, generator=g).to(dtype)
        cache.append(k, v, [s])
        hist[s] = (k, v)
    q = torch.randn(3, 4, 1, 16, generator=g).to(dtype)
    out = cache.attend(q)
    assert cache.lengths.tolist() == [3, 7, 1]
    for s in range(3):
        k, v = hist[s]
        ref = naive_attention(q[s:s + 1].double(), k.double(), v.double(), causal=True)
        if dtype == torch.float32:
            torch.testing.assert_close(out[s:s + 1].double(), ref, **TOL[torch.float32])
        else:
            base = F.scaled_dot_product_attention(q[s:s + 1], k, v, enable_gqa=True)  # one query: sees every key
            err, base_err = ((t.double() - ref).abs().max().item() for t in (out[s:s + 1], base))
            assert err <= 3 * base_err + 2e-3, (err, base_err)


@pytest.mark.parametrize("kind", ["contiguous", "rolling", "paged", "quantized"])
def test_attend_goes_through_the_dispatcher(kind, monkeypatch):
    calls = []
    real = kv_base.flash_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(kv_base, "flash_attention", spy)
    if kind == "quantized":
        cache = QuantizedKVCache(8, batch=2, kv_heads=2, head_dim=16)
    else:
        cache = make(kind, batch=2, kv_heads=2, head_dim=16, dtype=torch.float32)
    cache.append(torch.randn(2, 2, 3, 16), torch.randn(2, 2, 3, 16))
    cache.attend(torch.randn(2, 4, 1, 16))
    assert len(calls) == 1 and calls[0]["causal"] is True  # one call for the two equal-length sequences


# ---------------------------------------------------------------- GQA and bytes
def all_kinds(kv_heads, head_dim=16, dtype=torch.float16, batch=3):
    shape = {"batch": batch, "kv_heads": kv_heads, "head_dim": head_dim, "dtype": dtype}
    return {
        "contiguous": ContiguousKVCache(32, **shape),
        "rolling": RollingKVCache(8, chunk=3, **shape),
        "paged": PagedKVCache(4, 10, **shape),
        "quantized": QuantizedKVCache(32, bits=4, key_axis="channel", group_size=8, residual=4, **shape),
    }


def storage(cache: KVCache) -> list[torch.Tensor]:
    if isinstance(cache, PagedKVCache):
        return [cache.k_pool, cache.v_pool]
    if isinstance(cache, QuantizedKVCache):
        return [t for s in (cache.keys, cache.values) for t in (s.codes, s.scales, s.recent)]
    return [cache.k, cache.v]


@pytest.mark.parametrize("kind", ["contiguous", "rolling", "paged", "quantized"])
def test_gqa_caches_hold_only_kv_heads(kind):
    kv_heads, heads = 2, 8
    cache = all_kinds(kv_heads)[kind]
    assert all(t.shape[1] == kv_heads for t in storage(cache))
    assert sum(t.nbytes for t in storage(cache)) == cache.nbytes
    with pytest.raises(ValueError, match=r"k_new must have shape \(3, 2, t>=1, 16\).*got \(3, 8, 1, 16\)"):
        x = torch.zeros(3, heads, 1, 16, dtype=torch.float16)
        cache.append(x, x)
    x = torch.randn(3, kv_heads, 2, 16).half()
    cache.append(x, x)
    assert cache.attend(torch.randn(3, heads, 1, 16).half()).shape == (3, heads, 1, 16)
    # an MHA cache of the same model holds heads / kv_heads times more
    assert all_kinds(heads)[kind].nbytes == cache.nbytes * heads // kv_heads


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_bytes_held_equal_the_calculator(dtype):
    shape = {"n_layers": 1, "n_kv_heads": 2, "head_dim": 16, "dtype": dtype}
    caches = all_kinds(2, dtype=dtype)
    assert caches["contiguous"].nbytes == kv_cache_bytes(32, batch=3, **shape)
    assert caches["rolling"].nbytes == kv_cache_bytes(8 + 3 - 1, batch=3, **shape)
    paged = caches["paged"]
    assert paged.nbytes == kv_cache_bytes(4 * 10, **shape)
    x = torch.zeros(3, 2, 5, 16, dtype=dtype)
    for cache in caches.values():
        before = cache.nbytes
        cache.append(x, x)
        assert cache.nbytes == before  # preallocated: appending allocates nothing
    assert paged.used_bytes == kv_cache_bytes(3 * 2 * 4, **shape)  # 5 tokens -> 2 blocks of 4 per sequence
    paged.free(2)
    paged.fork(0, 2)  # shares blocks: nothing new in use
    assert paged.used_bytes == kv_cache_bytes(2 * 2 * 4, **shape)


# ---------------------------------------------------------------- bad input
def snapshot(cache):
    return cache.lengths.tolist(), [t.clone() for t in storage(cache)]


def assert_unchanged(cache, snap):
    lengths, tensors = snap
    assert cache.lengths.tolist() == lengths
    assert all(torch.equal(a, b) for a, b in zip(storage(cache), tensors, strict=True))


@pytest.mark.parametrize("kind", ["contiguous", "rolling", "paged", "quantized"])
def test_mismatched_inputs_raise_and_change_nothing(kind):
    cache = all_kinds(2, dtype=torch.float32)[kind]
    x = torch.randn(3, 2, 2, 16)
    cache.append(x, x)
    snap = snapshot(cache)
    with pytest.raises(ValueError, match=r"k_new must have shape \(3, 2, t>=1, 16\).*got \(3, 2, 2, 8\)"):
        cache.append(x[..., :8], x[..., :8])
    with pytest.raises(ValueError, match=r"v_new must have shape \(2, 2, t>=1, 16\).*got \(3, 2, 2, 16\)"):
        cache.append(x[:2], x, [0, 1])
    with pytest.raises(TypeError, match="k_new must be torch.float32 on cpu, got torch.float16"):
        cache.append(x.half(), x.half())
    with pytest.raises(TypeError, match="k_new must be a torch.Tensor, got list"):
        cache.append([1.0], x)
    with pytest.raises(ValueError, match=r"k_new and v_new must have one shape, got \(3, 2, 2, 16\) and \(3, 2, 1, "):
        cache.append(x, x[:, :, :1])
    with pytest.raises(ValueError, match=r"seq_ids must not repeat a sequence, got \[1, 1\]"):
        cache.append(x[:2], x[:2], [1, 1])
    with pytest.raises(ValueError, match=r"seq_ids\[1\] must be a slot number in \[0, 3\), got 3"):
        cache.append(x[:2], x[:2], [0, 3])
    with pytest.raises(TypeError, match=r"seq_ids\[0\] must be an integer, got float 0.5"):
        cache.append(x[:1], x[:1], [0.5])
    q = torch.randn(3, 6, 1, 16)
    with pytest.raises(ValueError, match=r"q must have shape \(3, heads, q_len>=1, 16\) with heads a multiple of "
                                         r"kv_heads=2, got \(3, 3, 1, 16\)"):
        cache.attend(q[:, :3])
    with pytest.raises(ValueError, match=r"q must have shape \(3, heads, q_len>=1, 16\).*got \(3, 6, 1, 32\)"):
        cache.attend(torch.randn(3, 6, 1, 32))
    with pytest.raises(TypeError, match="q must be torch.float32 on cpu like the cache, got torch.float64"):
        cache.attend(q.double())
    with pytest.raises(ValueError, match="q holds q_len=3 queries, but sequence 0 has only 2 tokens"):
        cache.attend(torch.randn(3, 6, 3, 16))
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        cache.attend(q, window=0)
    assert_unchanged(cache, snap)


@pytest.mark.parametrize("kind", ["contiguous", "rolling", "paged", "quantized"])
def test_unknown_sequences(kind):
    cache = all_kinds(2, dtype=torch.float32)[kind]
    x = torch.randn(1, 2, 2, 16)
    cache.append(x, x, [1])
    snap = snapshot(cache)
    with pytest.raises(ValueError, match=r"seq_id must name a sequence the cache holds \(one of \[1\]\), got 0"):
        cache.free(0)
    with pytest.raises(ValueError, match=r"seq_id must be a slot number in \[0, 3\), got 7"):
        cache.free(7)
    with pytest.raises(TypeError, match="seq_id must be an integer, got str '1'"):
        cache.free("1")
    with pytest.raises(ValueError, match=r"src must name a sequence the cache holds \(one of \[1\]\), got 2"):
        cache.fork(2, 0)
    cache.fork(1, 0)
    with pytest.raises(ValueError, match="dst must be an empty slot .*got 0, which holds 2 tokens"):
        cache.fork(1, 0)
    with pytest.raises(ValueError, match=r"the cache is empty for seq_ids \[2\]"):
        cache.attend(torch.randn(2, 2, 1, 16), [1, 2])
    with pytest.raises(ValueError, match=r"seq_ids must name sequences of one length"):
        cache.append(x, x, [0])
        cache.gather([0, 1])
    cache.free(0)
    cache.free(1)
    assert cache.lengths.tolist() == [0, 0, 0]
    del snap


@pytest.mark.parametrize("kind", ["contiguous", "paged", "quantized"])
def test_appending_past_capacity_raises_and_changes_nothing(kind):
    cache = all_kinds(2, dtype=torch.float32, batch=2)[kind]
    cap = cache.capacity
    cache.append(torch.randn(1, 2, cap - 1, 16), torch.randn(1, 2, cap - 1, 16), [0])
    snap = snapshot(cache)
    x = torch.randn(2, 2, 2, 16)
    with pytest.raises(ValueError, match=f"k_new holds t=2 new tokens, but sequence 0 already has {cap - 1} and "
                                         f"capacity is {cap} tokens per sequence"):
        cache.append(x, x)  # sequence 1 would fit: it is not appended either
    assert_unchanged(cache, snap)


def test_constructor_arguments():
    shape = {"batch": 1, "kv_heads": 1, "head_dim": 16}
    for bad, err, msg in [(0, ValueError, "block_size must be an integer >= 1, got 0"),
                          (-2, ValueError, "block_size must be an integer >= 1, got -2"),
                          (2.5, TypeError, "block_size must be an integer, got float 2.5"),
                          (True, TypeError, "block_size must be an integer, got bool True"),
                          ("4", TypeError, "block_size must be an integer, got str '4'")]:
        with pytest.raises(err, match=msg):
            PagedKVCache(bad, 4, **shape)
    with pytest.raises(ValueError, match="num_blocks must be an integer >= 1, got 0"):
        PagedKVCache(4, 0, **shape)
    with pytest.raises(ValueError, match="capacity must be an integer >= 1, got 0"):
        ContiguousKVCache(0, **shape)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1, got 0"):
        RollingKVCache(4, chunk=0, **shape)
    with pytest.raises(ValueError, match="kv_heads must be an integer >= 1, got 0"):
        ContiguousKVCache(4, batch=1, kv_heads=0, head_dim=16)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype, got torch.int8"):
        ContiguousKVCache(4, dtype=torch.int8, **shape)


def test_rolling_refuses_queries_whose_keys_it_dropped():
    cache = RollingKVCache(3, batch=1, kv_heads=1, head_dim=16, chunk=2)  # 4 slots
    x = torch.randn(1, 1, 6, 16)
    cache.append(x, x)
    cache.attend(torch.randn(1, 1, 2, 16))  # positions 4, 5 need keys 2..5: kept
    with pytest.raises(ValueError, match=r"keeps only positions 2..5 in its 4 slots and its first query needs keys "
                                         r"from position 1"):
        cache.attend(torch.randn(1, 1, 3, 16))
    cache.attend(torch.randn(1, 1, 3, 16), window=2)  # a narrower window needs less
    with pytest.raises(ValueError, match="window must be <= the buffer's window=3"):
        cache.attend(torch.randn(1, 1, 1, 16), window=4)
    two = RollingKVCache(2, batch=2, kv_heads=1, head_dim=16)
    two.append(x[:, :, :1], x[:, :, :1], [0])
    with pytest.raises(ValueError, match="length is defined when every sequence has one length"):
        _ = two.length
    with pytest.raises(ValueError, match="positions is defined when every sequence has one length"):
        _ = two.positions
    assert two.positions_of(0).tolist() == [0, -1]
