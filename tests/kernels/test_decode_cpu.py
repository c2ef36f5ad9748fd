"""decode_attention's PyTorch path (what CPU runs without the interpreter), its errors, and the split heuristic.

Unit stage (no marker). The reference is ``decode_reference.py`` (float64, from the definition). The
tolerance rule is chapter 4's, as for the kernels; float64 inputs must match to 1e-12.
"""

from __future__ import annotations

import math

import pytest
import torch
from decode_reference import assert_decode_rule, decode_reference, random_paged
from hypothesis import given, settings
from hypothesis import strategies as st

from longctx_lab.kernels.config import (
    KERNELS,
    MAX_TRITON_HEAD_DIM,
    TILE_HEAD_DIMS,
    decode_block_m,
    decode_kernel_config,
    kernel_config,
    padded_head_dim,
    triton_fits,
)
from longctx_lab.kernels.decode import MAX_SPLITS, MIN_TILES_PER_SPLIT, choose_num_splits
from longctx_lab.kernels.decode_dispatch import (
    MAX_NUM_SPLITS,
    decode_attention,
    decode_attention_with_lse,
)
from longctx_lab.kernels.dispatch import interpreter_active
from longctx_lab.kvcache import decode_attention_from_cache

BACKENDS = ["auto", "triton", "torch"]


def make(batch=2, kv_heads=2, group=2, q_len=1, max_len=8, head_dim=16, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, kv_heads * group, q_len, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, max_len, head_dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, max_len, head_dim, generator=gen).to(dtype)
    return q, k, v


cases = st.fixed_dictionaries({
    "batch": st.integers(1, 3),
    "kv_heads": st.integers(1, 2),
    "group": st.sampled_from([1, 2, 3]),
    "q_len": st.integers(1, 5),
    "lengths": st.lists(st.integers(0, 90), min_size=3, max_size=3),
    "head_dim": st.sampled_from([16, 32]),
    "window": st.none() | st.integers(1, 50),
    "page": st.none() | st.sampled_from([1, 4, 7, 16]),
    "dtype": st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=30)
@given(cases)
def test_torch_path_matches_float64(case):
    lengths = case["lengths"][: case["batch"]]
    q, k, v = make(case["batch"], case["kv_heads"], case["group"], case["q_len"], max(lengths) + 2,
                   case["head_dim"], case["dtype"], case["seed"])
    table = None
    if case["page"] is not None:
        k, v, table = random_paged(k, v, lengths, case["page"], extra_blocks=2,
                                   gen=torch.Generator().manual_seed(case["seed"]))
    out, lse = decode_attention_with_lse(q, k, v, lengths, block_table=table, window=case["window"], backend="torch")
    assert_decode_rule(out, lse, q, k, v, lengths, block_table=table, window=case["window"])


@pytest.mark.parametrize("paged", [False, True])
def test_float64_runs_the_torch_path_and_matches_to_1e12(paged):
    lengths = [30, 1, 0, 17]
    q, k, v = make(4, 2, 3, 2, 32, 32, torch.float64, seed=1)
    table = None
    if paged:
        k, v, table = random_paged(k, v, lengths, 5, extra_blocks=1, gen=torch.Generator().manual_seed(1))
    out, lse = decode_attention_with_lse(q, k, v, lengths, block_table=table, window=9)  # auto: float64 -> torch
    ref, ref_lse = decode_reference(q, k, v, lengths, block_table=table, window=9)
    assert out.dtype == torch.float64 and lse.dtype == torch.float64
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(lse, ref_lse, atol=1e-12, rtol=1e-12)
    assert torch.isneginf(lse[2]).all() and (out[2] == 0).all()  # the empty slot


@pytest.mark.parametrize("head_dim", [*TILE_HEAD_DIMS, 1, 8, 24, 80, 96, 320])
def test_every_head_dim_on_the_torch_path(head_dim):
    q, k, v = make(1, 1, 2, 1, 12, head_dim, torch.float32, seed=head_dim)
    out, lse = decode_attention_with_lse(q, k, v, [12], backend="torch")
    assert_decode_rule(out, lse, q, k, v, [12])


def test_single_decode_query_with_window_sees_the_last_w_keys():
    q, k, v = make(1, 1, 1, 1, 40, 16, torch.float64, seed=2)
    out = decode_attention(q, k, v, [40], window=6)
    w = torch.softmax((q[0, 0] @ k[0, 0, 34:40].T) / 4.0, -1)
    torch.testing.assert_close(out[0, 0], w @ v[0, 0, 34:40], atol=1e-12, rtol=1e-12)


def test_from_cache_reads_contiguous_and_paged_caches_and_refuses_other_kinds():
    from longctx_lab.kvcache import ContiguousKVCache, PagedKVCache, RollingKVCache

    gen = torch.Generator().manual_seed(3)
    opts = dict(batch=2, kv_heads=1, head_dim=16)
    for cache in (ContiguousKVCache(20, **opts), PagedKVCache(3, 16, **opts)):
        cache.append(torch.randn(1, 1, 7, 16, generator=gen), torch.randn(1, 1, 7, 16, generator=gen), seq_ids=[0])
        q = torch.randn(2, 2, 1, 16, generator=gen)
        out = decode_attention_from_cache(q, cache, backend="torch")
        torch.testing.assert_close(out[:1], cache.attend(q[:1], seq_ids=[0]), atol=1e-6, rtol=1e-5)
        assert (out[1] == 0).all()  # slot 1 is empty
    with pytest.raises(TypeError, match=r"cache must be a ContiguousKVCache or a PagedKVCache, got RollingKVCache"):
        decode_attention_from_cache(torch.randn(2, 2, 1, 16), RollingKVCache(4, **opts))


@pytest.mark.skipif(interpreter_active(), reason="under TRITON_INTERPRET=1 the Triton path runs on CPU")
def test_backend_triton_without_cuda_or_interpreter_is_refused():
    q, k, v = make()
    with pytest.raises(ValueError, match=r"backend='triton' needs CUDA tensors"):
        decode_attention(q, k, v, [3, 4], backend="triton")
    with pytest.raises(TypeError, match=r"backend='triton' needs q, k and v in float16, bfloat16 or float32"):
        decode_attention(*(t.double() for t in (q, k, v)), [3, 4], backend="triton")


# ------------------------------------------------------------------------------------------------ errors


def paged(lengths=(5, 3), page=4, num_blocks=4):
    q, k, v = make(max_len=num_blocks * page)
    k_pool = k[0].reshape(2, num_blocks, page, 16).transpose(0, 1).contiguous()
    table = torch.tensor([[0, 1], [2, -1]], dtype=torch.int32)
    return q, k_pool, k_pool.clone(), list(lengths), table


def contiguous(**kw):
    q, k, v = make(**kw)
    return q, k, v, [3, 4], None


BAD = [
    (lambda: (torch.randn(2, 4, 16), *contiguous()[1:]), {}, ValueError, r"q must have 4 dimensions"),
    (lambda: ([[0.0]], *contiguous()[1:]), {}, TypeError, r"q must be a torch\.Tensor"),
    (lambda: (contiguous()[0], contiguous()[1].half(), *contiguous()[2:]), {}, TypeError,
     r"q, k and v must share one dtype"),
    (lambda: (*contiguous()[:2], torch.randn(2, 2, 9, 16), *contiguous()[3:]), {}, ValueError,
     r"k and v must have the same shape"),
    (lambda: (torch.randn(2, 3, 1, 16), *contiguous()[1:]), {}, ValueError,
     r"q heads \(3\) must be a multiple of k/v heads \(2\)"),
    (lambda: (torch.randn(3, 4, 1, 16), *contiguous()[1:]), {}, ValueError, r"k must have batch 3"),
    (lambda: (*(t.int() for t in contiguous()[:3]), [3, 4], None), {}, TypeError,
     r"q must be a floating-point tensor"),
    (lambda: (*(t.to(torch.float8_e4m3fn) for t in contiguous()[:3]), [3, 4], None), {}, TypeError,
     r"float16, bfloat16, float32 or float64, got dtype torch\.float8_e4m3fn"),
    (lambda: contiguous(q_len=65, max_len=70), {}, ValueError, r"q_len \(dimension 2 of q\) must be <= 64 .*got 65"),
    (lambda: (*contiguous()[:3], torch.tensor([3, 4, 5]), None), {}, ValueError,
     r"lengths must have shape \(2,\), one length per sequence of q, got \(3,\)"),
    (lambda: (*contiguous()[:3], torch.tensor([3.0, 4.0]), None), {}, TypeError,
     r"lengths must be an integer tensor, got dtype torch\.float32"),
    (lambda: (*contiguous()[:3], [3, 4.0], None), {}, TypeError, r"lengths\[1\] must be an integer, got float 4\.0"),
    (lambda: (*contiguous()[:3], 4, None), {}, TypeError, r"lengths must be a 1-D integer tensor or a list of ints"),
    (lambda: (*contiguous()[:3], [3, 9], None), {}, ValueError,
     r"lengths must be in \[0, 8\] \(the cache holds 8 tokens per sequence\), got 9 for sequence 1"),
    (lambda: (*contiguous()[:3], [-1, 4], None), {}, ValueError,
     r"lengths must be in \[0, 8\] .*got -1 for sequence 0"),
    (contiguous, {"window": 0}, ValueError, r"window must be an integer >= 1, got 0"),
    (contiguous, {"window": 2.5}, TypeError, r"window must be an integer"),
    (contiguous, {"scale": 0.0}, ValueError, r"scale must be > 0"),
    (contiguous, {"scale": "x"}, TypeError, r"scale must be a real number"),
    (contiguous, {"num_splits": 0}, ValueError, r"num_splits must be an integer >= 1, got 0"),
    (contiguous, {"num_splits": MAX_NUM_SPLITS + 1}, ValueError,
     rf"num_splits must be an integer in \[1, {MAX_NUM_SPLITS}\], got {MAX_NUM_SPLITS + 1}"),
    (contiguous, {"num_splits": 1.5}, TypeError, r"num_splits must be an integer"),
    # paged
    (lambda: (*paged()[:4], paged()[4].long()), {}, TypeError, r"block_table must be an int32 tensor .*torch\.int64"),
    (lambda: (*paged()[:4], paged()[4][:1]), {}, ValueError, r"block_table must have shape \(2, max_blocks >= 1\)"),
    (lambda: (*paged()[:4], [[0, 1], [2, 3]]), {}, TypeError, r"block_table must be a torch\.Tensor, got list"),
    (lambda: (*paged((5, 5))[:4], paged()[4]), {}, ValueError,
     r"block_table\[1, 1\] must be a block number in \[0, 4\) \(sequence 1 holds 5 tokens, in its first 2 blocks\), "
     r"got -1"),
    (lambda: (*paged()[:4], torch.tensor([[0, 4], [2, -1]], dtype=torch.int32)), {}, ValueError,
     r"block_table\[0, 1\] must be a block number in \[0, 4\) .*got 4"),
    (lambda: (*paged((9, 3))[:4], paged()[4]), {}, ValueError, r"lengths must be in \[0, 8\] .*got 9 for sequence 0"),
    (lambda: (paged()[0], paged()[1][0], paged()[2][0], *paged()[3:]), {}, ValueError,
     r"k must have 4 dimensions \(num_blocks, kv_heads, block_size, head_dim\) with block_table"),
    (lambda: (paged()[0], paged()[1][..., :8], paged()[2][..., :8], *paged()[3:]), {}, ValueError,
     r"k must have head_dim 16 like q, got 8"),
    (lambda: (torch.randn(2, 3, 1, 16), *paged()[1:]), {}, ValueError,
     r"q heads \(3\) must be a multiple of k/v heads"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make_args,kwargs,error,pattern", BAD)
def test_bad_inputs(make_args, kwargs, error, pattern, backend):
    q, k, v, lengths, table = make_args()
    with pytest.raises(error, match=pattern):
        decode_attention(q, k, v, lengths, block_table=table, backend=backend, **kwargs)
    with pytest.raises(error, match=pattern):
        decode_attention_with_lse(q, k, v, lengths, block_table=table, backend=backend, **kwargs)


def test_head_dim_past_256_runs_on_the_pytorch_path_and_is_refused_by_triton():
    q, k, v, lengths, _ = contiguous(head_dim=300)
    out, lse = decode_attention_with_lse(q, k, v, lengths)  # auto: the PyTorch path, interpreter or not
    assert_decode_rule(out, lse, q, k, v, lengths)
    with pytest.raises(ValueError, match=r"backend='triton' needs head_dim \(the last dimension of q, k and v\) "
                                         r"<= 256, .* got head_dim 300"):
        decode_attention(q, k, v, lengths, backend="triton")


def test_bad_backend_name():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'triton', 'torch'\), got 'cuda'"):
        decode_attention(*contiguous()[:4], backend="cuda")


def test_padding_of_the_block_table_is_never_read():
    q, k_pool, v_pool, lengths, table = paged()
    table[1, 1] = 12345  # sequence 1 holds 3 tokens: one block; this entry is padding
    out = decode_attention(q, k_pool, v_pool, lengths, block_table=table, backend="torch")
    table[1, 1] = -1
    assert torch.equal(out, decode_attention(q, k_pool, v_pool, lengths, block_table=table, backend="torch"))


# ------------------------------------------------------------------------------------------------ heuristic


def test_split_heuristic():
    # a few sequences over a long cache: split until about two programs per SM
    assert choose_num_splits(8, 32768, 64, 132) == math.ceil(2 * 132 / 8)
    # enough programs already: no split
    assert choose_num_splits(64 * 8, 32768, 64, 132) == 1
    # short caches: each split keeps at least MIN_TILES_PER_SPLIT tiles
    assert choose_num_splits(1, 64 * MIN_TILES_PER_SPLIT * 3, 64, 132) == 3
    assert choose_num_splits(1, 100, 64, 132) == 1
    assert choose_num_splits(1, 0, 64, 132) == 1
    # never beyond the cap
    assert choose_num_splits(1, 10**7, 16, 10**4) == MAX_SPLITS == MAX_NUM_SPLITS
    with pytest.raises(ValueError, match=r"programs must be an integer >= 1, got 0"):
        choose_num_splits(0, 10, 16, 4)


def test_padded_head_dim_is_the_next_power_of_two_from_16():
    widths = {d: padded_head_dim(d) for d in range(1, MAX_TRITON_HEAD_DIM + 1)}
    for d, w in widths.items():
        assert w in TILE_HEAD_DIMS and w >= d and (w == 16 or w // 2 < d), (d, w)
    assert [widths[d] for d in (1, 16, 17, 24, 40, 64, 80, 96, 129, 256)] == [16, 16, 32, 32, 64, 64, 128, 128,
                                                                              256, 256]
    with pytest.raises(ValueError, match=r"head_dim must be <= 256 on the Triton path .*, got 257; the PyTorch path"):
        padded_head_dim(257)
    with pytest.raises(ValueError, match=r"head_dim must be an integer >= 1, got 0"):
        padded_head_dim(0)


def test_only_float32_at_width_256_before_sm_80_does_not_fit():
    for cc in (75, 80, 86, 90):
        for d in (1, 64, 80, 128, 129, 256):
            for elem in (2, 4):
                assert triton_fits(cc, d, elem) == (cc >= 80 or elem == 2 or d <= 128), (cc, d, elem)


@pytest.mark.parametrize("head_dim", [1, 24, 40, 80, 96, 200])
def test_tiles_of_a_head_dim_are_those_of_its_padded_width(head_dim):
    for kernel in KERNELS:
        for cc in (None, 75, 80, 86, 90):
            for elem in (2, 4):
                assert kernel_config(kernel, cc, head_dim, elem) == kernel_config(kernel, cc, padded_head_dim(head_dim),
                                                                                  elem)


def test_decode_tile_table():
    assert [decode_block_m(r, 80, 128) for r in (1, 8, 16, 17, 64, 200)] == [16, 16, 16, 32, 64, 64]
    assert decode_block_m(100, 80, 256) == 32 and decode_block_m(100, None, 64) == 16
    for cc in (75, 80, 86, 90):
        for d in (*TILE_HEAD_DIMS, 24, 80, 200):
            for elem in (2, 4):
                cfg = decode_kernel_config("decode_split", cc, d, elem)
                assert cfg == decode_kernel_config("decode_split", cc, padded_head_dim(d), elem)
                stage = 2 * cfg.block_n * padded_head_dim(d) * elem
                budget = {75: 32, 80: 64, 86: 64, 90: 96}[cc] * 1024
                assert 16 <= cfg.block_n <= 128 and stage * cfg.num_stages <= budget, (cc, d, elem, cfg)
    assert decode_kernel_config("decode_split", None, 64, 4).block_n == 16
    with pytest.raises(ValueError, match=r"head_dim must be <= 256 on the Triton path .*, got 257"):
        decode_kernel_config("decode_split", 80, 257, 2)
    with pytest.raises(ValueError, match=r"kernel must be one of \('decode_split', 'decode_merge'\), got 'fwd'"):
        decode_kernel_config("fwd", 80, 64, 2)
