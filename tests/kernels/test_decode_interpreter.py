"""The flash-decoding kernels (split + LSE merge) against a float64 reference written from the definition.

Run by the Triton interpreter on CPU (the ``triton`` stage), or compiled on a CUDA GPU with
``LONGCTX_LAB_KERNEL_DEVICE=cuda`` (the ``device`` fixture); references always run on the CPU
(``decode_reference.py``). Tolerance: chapter 4's rule (the kernel's error against float64 at most 3x SDPA's
in the same precision, plus a small slack); the LSE within 1e-4, ``-inf`` exactly where a row sees no key.

Every cache position a sequence does not hold is NaN (contiguous: past ``lengths[b]``; paged: unused blocks,
unused slots, and ``-1`` table padding), so a kernel that reads one fails the finiteness check.
"""

from __future__ import annotations

import pytest
import torch
from decode_reference import assert_decode_rule, decode_reference, random_paged
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_env import on_cuda

from longctx_lab.kernels import decode
from longctx_lab.kernels.decode_dispatch import (
    decode_attention,
    decode_attention_with_lse,
)
from longctx_lab.kernels.dispatch import select_backend
from longctx_lab.kvcache import decode_attention_from_cache

pytestmark = pytest.mark.triton

NAN = float("nan")
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if on_cuda() else [])


def make_case(batch, kv_heads, group, q_len, lengths, head_dim, dtype, seed, *, extra=0):
    """q and a contiguous cache with NaN past each sequence's length."""
    gen = torch.Generator().manual_seed(seed)
    max_len = max(max(lengths), 1) + extra
    q = torch.randn(batch, kv_heads * group, q_len, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, max_len, head_dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, max_len, head_dim, generator=gen).to(dtype)
    for b, n in enumerate(lengths):
        k[b, :, n:] = NAN
        v[b, :, n:] = NAN
    return q, k, v, gen


def run_kernel(q, k, v, lengths, device, *, block_table=None, window=None, num_splits=None, config=None):
    """The launcher directly (so tests can force tiles and splits), on ``device``; results on the CPU."""
    lens = torch.tensor(lengths, dtype=torch.int32, device=device)
    max_keys = max(lengths) if window is None else min(max(lengths), q.shape[2] - 1 + window)
    out, lse = decode.forward(q.to(device), k.to(device), v.to(device), lens,
                              block_table=None if block_table is None else block_table.to(device),
                              window=window, scale=q.shape[-1] ** -0.5, max_keys=max_keys, num_splits=num_splits,
                              config=config)
    return out.cpu(), lse.cpu()


def check(q, k, v, lengths, device, *, block_table=None, window=None, num_splits=None, config=None):
    out, lse = run_kernel(q, k, v, lengths, device, block_table=block_table, window=window, num_splits=num_splits,
                          config=config)
    assert_decode_rule(out, lse, q, k, v, lengths, block_table=block_table, window=window)
    return out, lse


cases = st.fixed_dictionaries({
    "batch": st.integers(1, 3),
    "kv_heads": st.integers(1, 2),
    "group": st.sampled_from([1, 2, 4, 5]),
    "q_len": st.sampled_from([1, 1, 2, 4]),
    "lengths": st.lists(st.integers(0, 70), min_size=3, max_size=3),
    "head_dim": st.sampled_from([16, 32]),
    "window": st.none() | st.integers(1, 40),
    "num_splits": st.none() | st.integers(1, 8),
    "config": st.sampled_from([None, {"block_n": 32}]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=14)
@given(cases)
def test_contiguous_matches_float64(device, case):
    lengths = case["lengths"][: case["batch"]]
    q, k, v, _ = make_case(case["batch"], case["kv_heads"], case["group"], case["q_len"], lengths,
                           case["head_dim"], torch.float32, case["seed"], extra=3)
    check(q, k, v, lengths, device, window=case["window"], num_splits=case["num_splits"], config=case["config"])


@settings(max_examples=10)
@given(cases, st.sampled_from([1, 5, 16, 24]), st.integers(0, 4))
def test_paged_with_shuffled_block_table_matches_float64(device, case, page, extra_blocks):
    lengths = case["lengths"][: case["batch"]]
    q, k, v, gen = make_case(case["batch"], case["kv_heads"], case["group"], case["q_len"], lengths,
                             case["head_dim"], torch.float16, case["seed"])
    k_pool, v_pool, table = random_paged(k, v, lengths, page, extra_blocks=extra_blocks, gen=gen)
    check(q, k_pool, v_pool, lengths, device, block_table=table, window=case["window"],
          num_splits=case["num_splits"], config=case["config"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "lengths,q_len,window,num_splits",
    [
        ([37, 1, 16, 33], 1, None, None),  # ragged, one-token cache, exactly one tile, one past a tile
        ([64, 65, 63], 1, None, 3),  # around tile multiples, three splits
        ([1, 2], 1, None, 8),  # more splits than tiles: empty splits everywhere
        ([50, 0, 7], 2, None, None),  # an empty slot: zeros and -inf
        ([3, 40], 5, None, 2),  # q_len > length: the first rows of sequence 0 see nothing
        ([70, 20], 1, 16, None),  # window edge on a tile boundary: keys 54..69, tiles before skipped
        ([70, 20], 3, 17, 4),  # window with several queries: per-row edges
    ],
)
def test_corner_cases(lengths, q_len, window, num_splits, dtype, device):
    q, k, v, _ = make_case(len(lengths), 2, 3, q_len, lengths, 32, dtype, seed=sum(lengths) + q_len)
    check(q, k, v, lengths, device, window=window, num_splits=num_splits)


def test_many_rows_span_several_row_blocks(device):
    """group 6 x q_len 3 = 18 stacked rows > the 16-row tile: two row blocks per (sequence, KV head)."""
    q, k, v, _ = make_case(2, 1, 6, 3, [45, 9], 16, torch.float32, seed=7)
    check(q, k, v, [45, 9], device, config={"block_m": 16})


@pytest.mark.parametrize("head_dim", [24, 40, 64, 80, 96, 128, 256])
def test_head_dims_up_to_256(head_dim, device):
    """Powers of two and head dims padded to the next one (24 -> 32, 40 -> 64, 80 and 96 -> 128): the padding
    columns must stay out of q . k, of the split outputs (stored ``head_dim`` apart) and of the merge."""
    q, k, v, gen = make_case(2, 1, 2, 2, [40, 23], head_dim, torch.float16, seed=head_dim)
    check(q, k, v, [40, 23], device, num_splits=2, window=30)
    q, k, v, gen = make_case(2, 1, 3, 1, [21, 9], head_dim, torch.float32, seed=head_dim + 1)
    k_pool, v_pool, table = random_paged(k, v, [21, 9], 5, extra_blocks=1, gen=gen)
    check(q, k_pool, v_pool, [21, 9], device, block_table=table)


def test_result_does_not_depend_on_the_split_count(device):
    """Any number of splits (including empty ones) gives the same result up to fp32 rounding of the merge."""
    q, k, v, _ = make_case(2, 2, 2, 1, [100, 37], 16, torch.float32, seed=3)
    outs = [run_kernel(q, k, v, [100, 37], device, num_splits=n) for n in (1, 2, 3, 7, 16)]
    for out, lse in outs[1:]:
        torch.testing.assert_close(out, outs[0][0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(lse, outs[0][1], atol=1e-6, rtol=1e-5)


def test_heuristic_splits_a_long_cache_of_one_sequence(device):
    if device.type == "cuda":
        pytest.skip("the interpreter's nominal SM count is what makes this input split")
    cfg = decode.split_config(torch.empty(1, 2, 1, 16), 1)
    assert decode.choose_num_splits(1, 200, cfg.block_n, decode.num_sms(torch.device("cpu"))) > 1
    q, k, v, _ = make_case(1, 1, 2, 1, [200], 16, torch.float32, seed=4)
    check(q, k, v, [200], device)  # default num_splits: the heuristic's


def test_window_never_touches_keys_before_it(device):
    """A single query with window 8 over 80 keys sees 72..79: NaN in keys 0..71 must not reach it, even in the
    tile (64..79) that holds both."""
    q, k, v, _ = make_case(1, 2, 2, 1, [80], 16, torch.float32, seed=5)
    ref, ref_lse = decode_reference(q, k, v, [80], window=8)
    k[:, :, :72] = NAN
    v[:, :, :72] = NAN
    out, lse = run_kernel(q, k, v, [80], device, window=8, num_splits=2)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse.double(), ref_lse, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@pytest.mark.parametrize("where", ["q", "k", "v"])
def test_nan_reaches_its_own_sequence_and_no_other(where, device):
    q, k, v, _ = make_case(2, 1, 2, 1, [30, 30], 16, torch.float32, seed=6)
    {"q": q, "k": k, "v": v}[where][0, 0, 5 if where != "q" else 0, 3] = NAN
    out, lse = run_kernel(q, k, v, [30, 30], device, num_splits=2)
    heads = slice(0, 1) if where == "q" else slice(None)  # a NaN query poisons its head; a NaN key both heads
    features = 3 if where == "v" else slice(None)  # a NaN value only the feature it sits in
    assert torch.isnan(out[0, heads, :, features]).all()
    if where == "q":
        assert torch.isfinite(out[0, 1]).all() and torch.isfinite(lse[0, 1]).all()
    assert torch.isfinite(out[1]).all() and torch.isfinite(lse[1]).all()
    if where == "v":
        assert torch.isfinite(lse).all()  # the LSE does not depend on the values
        assert torch.isfinite(out[0, :, :, :3]).all() and torch.isfinite(out[0, :, :, 4:]).all()
    else:
        assert torch.isnan(lse[0, heads]).all()


def test_empty_slot_with_nan_query_stays_zero(device):
    q, k, v, _ = make_case(2, 1, 1, 1, [0, 4], 16, torch.float32, seed=8)
    q[0] = NAN
    out, lse = run_kernel(q, k, v, [0, 4], device, num_splits=3)
    assert torch.equal(out[0], torch.zeros_like(out[0])) and torch.isneginf(lse[0]).all()


def test_non_contiguous_query_and_cache(device):
    """(batch, seq, heads, dim) storage viewed as (batch, heads, seq, dim), as a model's projections produce."""
    gen = torch.Generator().manual_seed(9)
    q = torch.randn(2, 1, 4, 16, generator=gen).transpose(1, 2)
    k = torch.randn(2, 50, 2, 16, generator=gen).transpose(1, 2)
    v = torch.randn(2, 50, 2, 16, generator=gen).transpose(1, 2)
    check(q, k, v, [50, 21], device, num_splits=2)


def test_dispatcher_uses_the_kernels_and_agrees_with_the_torch_path(device):
    lengths = [41, 0, 17]
    q, k, v, gen = make_case(3, 2, 2, 2, lengths, 32, torch.float32, seed=10)
    k_pool, v_pool, table = random_paged(k, v, lengths, 8, extra_blocks=2, gen=gen)
    assert select_backend(q.to(device)) == ("triton" if device.type == "cuda" else "triton-interpreter")
    for kk, vv, tbl in ((k, v, None), (k_pool, v_pool, table)):
        extra = {} if tbl is None else {"block_table": tbl.to(device)}
        results = {b: decode_attention_with_lse(q.to(device), kk.to(device), vv.to(device), lengths, window=20,
                                                backend=b, **extra)
                   for b in ("auto", "triton", "torch")}
        for out, lse in results.values():
            assert_decode_rule(out, lse, q, kk, vv, lengths, block_table=tbl, window=20)
        torch.testing.assert_close(results["auto"][0], results["torch"][0], atol=2e-6, rtol=1e-5)
    # lengths as a tensor (CPU or q's device) or as a list: one result
    q, k, v = (t.to(device) for t in (q, k, v))
    ref = decode_attention(q, k, v, lengths)
    for lens in (torch.tensor(lengths), torch.tensor(lengths, dtype=torch.int32, device=device)):
        torch.testing.assert_close(decode_attention(q, k, v, lens), ref, atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
def test_reads_the_kvcache_classes(kind, device):
    """Ragged prompts appended sequence by sequence, a fork (shared blocks), then one decode step for all."""
    from longctx_lab.kvcache import ContiguousKVCache, PagedKVCache

    kv_heads, heads, d = 2, 4, 16
    opts = dict(batch=3, kv_heads=kv_heads, head_dim=d, device=device)
    cache = ContiguousKVCache(40, **opts) if kind == "contiguous" else PagedKVCache(4, 40, **opts)
    gen = torch.Generator().manual_seed(11)
    for s, n in ((0, 13), (1, 5)):
        cache.append(torch.randn(1, kv_heads, n, d, generator=gen).to(device),
                     torch.randn(1, kv_heads, n, d, generator=gen).to(device), seq_ids=[s])
    cache.fork(0, 2)
    cache.append(torch.randn(3, kv_heads, 1, d, generator=gen).to(device),
                 torch.randn(3, kv_heads, 1, d, generator=gen).to(device))
    q = torch.randn(3, heads, 1, d, generator=gen).to(device)
    out = decode_attention_from_cache(q, cache, num_splits=2)
    torch.testing.assert_close(out, cache.attend(q), atol=2e-6, rtol=1e-5)


def test_bf16_is_refused_under_the_interpreter(device):
    if device.type == "cuda":
        pytest.skip("interpreter behaviour; bf16 runs natively on CUDA (test_corner_cases)")
    q, k, v, _ = make_case(1, 1, 1, 1, [4], 16, torch.bfloat16, seed=0)
    with pytest.raises(TypeError, match=r"bfloat16.*11584"):
        decode_attention(q, k, v, [4])
    assert decode_attention(q, k, v, [4], backend="torch").dtype == torch.bfloat16


#: Native only: long caches, the GPU's own tiles and split heuristic.
NATIVE_CASES = [
    # batch, kv_heads, group, q_len, lengths, head_dim, window, page
    (4, 8, 4, 1, [4096, 1, 3000, 777], 128, None, None),
    (2, 2, 8, 1, [20000, 5000], 128, None, 64),
    (3, 4, 2, 4, [2048, 2047, 100], 64, 512, None),
    (1, 1, 16, 1, [9000], 256, None, 16),
    (2, 2, 4, 1, [3000, 1234], 80, None, 32),  # head dims padded to 128
    (1, 2, 3, 2, [5000], 96, 700, None),
    (8, 2, 1, 2, [513] * 8, 32, 128, 256),
]


@pytest.mark.skipif(not on_cuda(), reason="native CUDA only: too large for the interpreter")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("case", NATIVE_CASES)
def test_native_sizes_against_float64(case, dtype, device):
    batch, kv_heads, group, q_len, lengths, head_dim, window, page = case
    q, k, v, gen = make_case(batch, kv_heads, group, q_len, lengths, head_dim, dtype, seed=batch * 7 + head_dim)
    table = None
    if page is not None:
        k, v, table = random_paged(k, v, lengths, page, extra_blocks=3, gen=gen)
    out, lse = decode_attention_with_lse(q.to(device), k.to(device), v.to(device), lengths, window=window,
                                         block_table=None if table is None else table.to(device), backend="triton")
    assert_decode_rule(out, lse, q, k, v, lengths, block_table=table, window=window)
