"""Tiled attention (FlashAttention in torch): forward, LSE, backward, block skipping, memory, errors.

Accuracy rule (flash-attn's): the error of our result against a float64 reference must be at most
a small multiple of the error that PyTorch's own attention (SDPA) makes in the same precision, plus
a few units in the last place for the case where SDPA happens to be nearly exact.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from longctx_lab.attention import tiled
from longctx_lab.attention.block_sparsity import EMPTY, FULL, PARTIAL, classify_blocks
from longctx_lab.attention.mask_predicates import attention_predicate
from longctx_lab.attention.masks import build_mask
from longctx_lab.attention.reference import naive_attention
from longctx_lab.attention.tiled import (
    key_block_range,
    tiled_attention,
    tiled_attention_backward,
    tiled_attention_forward,
)

FACTOR = 3.0  # "small multiple" of the same-precision reference's error
ULPS = 8.0  # absolute floor, in units of the dtype's eps times the reference's magnitude


def _inputs(batch, heads, kv_heads, q_len, kv_len, head_dim, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen, dtype=torch.float64)
    k = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen, dtype=torch.float64)
    dout = torch.randn(batch, heads, q_len, head_dim, generator=gen, dtype=torch.float64)
    return q, k, v, dout.to(dtype), [t.to(dtype) for t in (q, k, v)]


def _sdpa(q, k, v, causal, window):
    mask = build_mask(q.shape[2], k.shape[2], causal=causal, window=window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


def _grads(fn, tensors, dout):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, dout)
    return out.detach(), grads


def _assert_within_rule(name, ours, theirs, exact, dtype):
    ours, theirs = ours.double(), theirs.double()
    err = (ours - exact).abs().max().item()
    ref_err = (theirs - exact).abs().max().item()
    floor = ULPS * torch.finfo(dtype).eps * max(1.0, exact.abs().max().item())
    assert not math.isnan(err), f"{name}: NaN in our result"
    assert err <= FACTOR * ref_err + floor, f"{name}: error {err:.3g} vs SDPA's {ref_err:.3g} (floor {floor:.3g})"


def _check_case(batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, block_q, block_k, dtype, seed):
    heads = kv_heads * group
    q64, k64, v64, dout, (q, k, v) = _inputs(batch, heads, kv_heads, q_len, kv_len, head_dim, dtype, seed)

    def ours(q_, k_, v_):
        return tiled_attention(q_, k_, v_, causal=causal, window=window, block_q=block_q, block_k=block_k)

    def exact(q_, k_, v_):
        return naive_attention(q_, k_, v_, causal=causal, window=window, fully_masked="zero")

    out, grads = _grads(ours, (q, k, v), dout)
    out_pt, grads_pt = _grads(lambda *t: _sdpa(*t, causal, window), (q, k, v), dout)
    out_ref, grads_ref = _grads(exact, (q64, k64, v64), dout.double())
    assert out.dtype == dtype and out.shape == q.shape
    _assert_within_rule("out", out, out_pt, out_ref, dtype)
    for name, g, g_pt, g_ref, t in zip(("dq", "dk", "dv"), grads, grads_pt, grads_ref, (q, k, v)):
        assert g.dtype == dtype and g.shape == t.shape, name
        _assert_within_rule(name, g, g_pt, g_ref, dtype)

    # LSE against float64 logsumexp of the masked scores (-inf for rows that see no key).
    _, lse = tiled_attention_forward(q, k, v, causal=causal, window=window, block_q=block_q, block_k=block_k)
    assert lse.dtype == torch.float32 and lse.shape == (batch, heads, q_len)
    scores = q64 @ k64.repeat_interleave(group, dim=1).transpose(-2, -1) / math.sqrt(head_dim)
    keep = build_mask(q_len, kv_len, causal=causal, window=window)
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    lse_ref = torch.logsumexp(scores, dim=-1)
    lse_pt = torch.logsumexp(scores.to(dtype).float(), dim=-1)
    assert torch.equal(torch.isneginf(lse), torch.isneginf(lse_ref))
    finite = torch.isfinite(lse_ref)
    if finite.any():
        _assert_within_rule("lse", lse[finite], lse_pt[finite], lse_ref[finite], dtype)


@given(
    batch=st.integers(1, 2),
    kv_heads=st.integers(1, 2),
    group=st.sampled_from([1, 2, 3]),
    q_len=st.integers(1, 50),
    kv_len=st.integers(1, 50),
    head_dim=st.sampled_from([4, 8, 16]),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(1, 24)),
    block_q=st.sampled_from([8, 16, 32]),
    block_k=st.sampled_from([8, 16, 32]),
    seed=st.integers(0, 2**16),
)
def test_matches_sdpa_and_float64_reference(
    batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, block_q, block_k, seed
):
    _check_case(batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, block_q, block_k, torch.float32, seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "shape",
    [
        # batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, block_q, block_k
        (2, 2, 2, 45, 45, 32, True, None, 16, 16),
        (1, 1, 4, 33, 70, 16, True, 9, 8, 16),
        (2, 2, 1, 60, 21, 16, True, None, 16, 8),
        (1, 2, 3, 40, 40, 32, False, 6, 16, 4),
        (1, 1, 1, 50, 50, 64, False, None, 32, 32),
    ],
)
def test_fixed_shapes_all_dtypes(dtype, shape):
    _check_case(*shape, dtype, seed=7)


def test_fully_masked_rows_are_zero_with_neg_inf_lse():
    # q_len > kv_len, bottom-right aligned: the first q_len - kv_len query rows sit before key 0.
    q64, k64, v64, dout, (q, k, v) = _inputs(1, 2, 1, 12, 5, 8, torch.float32, 3)
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    out, lse = tiled_attention(q, k, v, causal=True, block_q=4, block_k=4, return_lse=True)
    assert torch.equal(out[:, :, :7], torch.zeros_like(out[:, :, :7]))
    assert torch.isneginf(lse[:, :, :7]).all() and torch.isfinite(lse[:, :, 7:]).all()
    out.backward(dout)
    for g in (q.grad, k.grad, v.grad):
        assert torch.isfinite(g).all()
    assert torch.equal(q.grad[:, :, :7], torch.zeros_like(q.grad[:, :, :7]))
    assert not lse.requires_grad


@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (True, 3), (False, 2)])
def test_gradcheck_float64(causal, window):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: tiled_attention(a, b, c, causal=causal, window=window, block_q=3, block_k=4),
        (q, k, v),
        fast_mode=True,
    )


def test_float64_lse_and_custom_scale():
    q64, k64, v64, _, _ = _inputs(1, 2, 2, 10, 13, 8, torch.float64, 5)
    out, lse = tiled_attention_forward(q64, k64, v64, causal=True, scale=0.3, block_q=4, block_k=5)
    assert lse.dtype == torch.float64
    ref = naive_attention(q64, k64, v64, causal=True, scale=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-13)


def test_block_sizes_do_not_change_the_result():
    _, _, _, _, (q, k, v) = _inputs(1, 4, 2, 37, 53, 16, torch.float32, 11)
    sizes = [(1, 1), (7, 5), (16, 64), (64, 16), (128, 128)]
    results = [tiled_attention_forward(q, k, v, causal=True, window=17, block_q=bq, block_k=bk) for bq, bk in sizes]
    for out, lse in results[1:]:
        torch.testing.assert_close(out, results[0][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lse, results[0][1], rtol=1e-5, atol=1e-6)


def _schedule(q_len, kv_len, causal, window, block_q, block_k):
    """The tiled pass's own decisions, read from its loop bounds and tile masks: EMPTY for a key block
    the loop never visits, FULL where it skips the element mask, PARTIAL where it applies one."""
    pred = attention_predicate(causal=causal, window=window)
    n_qb, n_kb = -(-q_len // block_q), -(-kv_len // block_k)
    out = torch.full((n_qb, n_kb), EMPTY, dtype=torch.int8)
    for qb in range(n_qb):
        qs, qe = qb * block_q, min((qb + 1) * block_q, q_len)
        first, last = key_block_range(qs, qe, q_len, kv_len, causal=causal, window=window, block_k=block_k)
        for kb in range(first, last):
            ks, ke = kb * block_k, min((kb + 1) * block_k, kv_len)
            keep = tiled._tile_keep(pred, qs, qe, ks, ke, kv_len - q_len, None)
            if keep is None:
                out[qb, kb] = FULL
            else:
                out[qb, kb] = PARTIAL
                assert keep.any() and not keep.all(), (qb, kb)  # a masked tile keeps some pairs, not all
    return out


@given(
    q_len=st.integers(1, 60),
    kv_len=st.integers(1, 60),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(1, 30)),
    block_q=st.integers(1, 20),
    block_k=st.integers(1, 20),
)
def test_tiled_pass_visits_exactly_the_nonempty_tiles(q_len, kv_len, causal, window, block_q, block_k):
    """The kernel's schedule is the tile classification: it visits the non-EMPTY tiles and no others,
    and skips the mask exactly on the FULL ones (classes checked against the dense mask, tile by tile)."""
    schedule = _schedule(q_len, kv_len, causal, window, block_q, block_k)
    classes = classify_blocks(attention_predicate(causal=causal, window=window), block_q, block_k,
                              q_len=q_len, kv_len=kv_len)
    assert torch.equal(schedule, classes)
    keep = build_mask(q_len, kv_len, causal=causal, window=window)
    if keep is None:
        keep = torch.ones(q_len, kv_len, dtype=torch.bool)
    for qb in range(classes.shape[0]):
        for kb in range(classes.shape[1]):
            tile = keep[qb * block_q : (qb + 1) * block_q, kb * block_k : (kb + 1) * block_k]
            expected = EMPTY if not tile.any() else FULL if tile.all() else PARTIAL
            assert classes[qb, kb] == expected, (qb, kb)


def test_causal_and_window_skip_tiles():
    n, b = 1024, 64
    full = _schedule(n, n, False, None, b, b)
    causal = _schedule(n, n, True, None, b, b)
    window = _schedule(n, n, True, 128, b, b)
    blocks = n // b
    assert int((full != EMPTY).sum()) == blocks * blocks
    assert int((causal != EMPTY).sum()) == blocks * (blocks + 1) // 2  # lower triangle incl. diagonal
    assert int((causal == PARTIAL).sum()) == blocks  # only the diagonal tiles need a mask
    # window 128 = two blocks: query block i needs key blocks i-2 (partly), i-1 and i (diagonal)
    assert int((window != EMPTY).sum()) == 1 + 2 + 3 * (blocks - 2)
    assert key_block_range(0, 64, 1024, 1024, causal=True, block_k=64) == (0, 1)
    assert key_block_range(0, 4, 8, 2, causal=True, block_k=2) == (0, 0)  # all rows before key 0


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (to prove no n x n matrix is built)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for r in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(r, torch.Tensor):
                self.largest = max(self.largest, r.numel())
        return result


def test_never_materialises_scores_or_repeated_kv():
    # GQA group 4, long keys: an n x n score matrix (q_len * kv_len * heads) or K/V repeated to all
    # query heads (4 * k.numel()) would both be far larger than anything the tiled path needs.
    q_len, kv_len, group, d = 64, 512, 4, 8
    _, _, _, dout, (q, k, v) = _inputs(1, group, 1, q_len, kv_len, d, torch.float32, 0)
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    with _LargestTensor() as rec:
        out = tiled_attention(q, k, v, causal=True, block_q=16, block_k=32)
        out.backward(dout)
    assert rec.largest <= k.numel(), rec.largest
    with _LargestTensor() as naive:  # the recorder does see the matrix when one is built
        naive_attention(q.detach(), k.detach(), v.detach(), causal=True)
    assert naive.largest >= group * q_len * kv_len


def test_backward_function_matches_autograd():
    _, _, _, dout, (q, k, v) = _inputs(2, 4, 2, 19, 23, 8, torch.float32, 4)
    kw = dict(causal=True, window=6, block_q=8, block_k=8)
    out, lse = tiled_attention_forward(q, k, v, **kw)
    dq, dk, dv = tiled_attention_backward(q, k, v, out, lse, dout, **kw)
    _, grads = _grads(lambda *t: tiled_attention(*t, **kw), (q, k, v), dout)
    for a, b in zip((dq, dk, dv), grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_bad_inputs():
    q = torch.randn(1, 4, 8, 16)
    k = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        tiled_attention_forward(q, k, k, window=0)
    with pytest.raises(TypeError, match="window must be an integer, got float"):
        tiled_attention(q, k, k, window=2.0)
    with pytest.raises(ValueError, match="block_q must be an integer >= 1, got 0"):
        tiled_attention_forward(q, k, k, block_q=0)
    with pytest.raises(TypeError, match="block_k must be an integer"):
        tiled_attention(q, k, k, block_k="64")
    with pytest.raises(TypeError, match="causal must be a bool"):
        tiled_attention_forward(q, k, k, causal=1)
    with pytest.raises(ValueError, match="scale must be > 0"):
        tiled_attention(q, k, k, scale=-1.0)
    with pytest.raises(TypeError, match="share one dtype"):
        tiled_attention_forward(q, k.double(), k.double())
    with pytest.raises(ValueError, match="multiple of k/v heads"):
        tiled_attention(torch.randn(1, 3, 8, 16), k, k)
    with pytest.raises(ValueError, match="head_dim 16 like q"):
        tiled_attention_forward(q, torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="k and v must have the same shape"):
        tiled_attention(q, k, torch.randn(1, 2, 9, 16))
    with pytest.raises(ValueError, match="4 dimensions"):
        tiled_attention_forward(q[0], k[0], k[0])
    with pytest.raises(TypeError, match="floating-point"):
        tiled_attention(q.long(), k.long(), k.long())
    with pytest.raises(TypeError, match="return_lse must be a bool"):
        tiled_attention(q, k, k, return_lse=None)
    out, lse = tiled_attention_forward(q, k, k)
    with pytest.raises(ValueError, match=r"lse must have shape \(1, 4, 8\)"):
        tiled_attention_backward(q, k, k, out, lse[..., :4], out)
    with pytest.raises(ValueError, match="dout must have shape"):
        tiled_attention_backward(q, k, k, out, lse, out[:, :2])
    with pytest.raises(TypeError, match="out must be a torch.Tensor"):
        tiled_attention_backward(q, k, k, None, lse, out)
    with pytest.raises(ValueError, match="q_end must be <= q_len"):
        key_block_range(0, 9, 8, 8)


def test_thread_count_is_restored():
    # Tile ops run single-threaded, in worker threads or inline (see tiled._run); the caller's setting must survive.
    before = torch.get_num_threads()
    _, _, _, _, (q, k, v) = _inputs(1, 2, 1, 40, 40, 8, torch.float32, 0)
    tiled_attention_forward(q, k, v, causal=True)
    out = tiled_attention(q.requires_grad_(True), k, v, causal=True)
    out.sum().backward()
    assert torch.get_num_threads() == before


def test_worker_threads_give_the_single_thread_result(monkeypatch):
    # Enough work for the tiles to be shared out among worker threads (tiled._run): each forward block's
    # result is computed by one worker, so out and LSE are bit-identical; dQ is summed over the workers'
    # key blocks in another order, so equal to rounding. The caller's thread count is restored.
    _, _, _, dout, (q, k, v) = _inputs(1, 4, 2, 600, 600, 32, torch.float32, 9)
    kw = dict(causal=True, block_q=64, block_k=128)
    pools = []
    real_pool = tiled._pool
    monkeypatch.setattr(tiled, "_pool", lambda workers: pools.append(workers) or real_pool(workers))
    monkeypatch.setattr(tiled, "_PARALLEL_WORK", 1)  # share out even this small problem
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out, lse = tiled_attention_forward(q, k, v, **kw)
        results[threads] = (out, lse, *tiled_attention_backward(q, k, v, out, lse, dout, **kw))
        assert torch.get_num_threads() == threads
    torch.set_num_threads(1)
    assert pools and set(pools) == {1}  # 2-thread runs: the caller plus a pool of one; 1-thread runs: no pool
    assert torch.equal(results[1][0], results[2][0]) and torch.equal(results[1][1], results[2][1])
    for a, b in zip(results[1][2:], results[2][2:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_split_is_deterministic_and_balanced():
    parts = tiled._split([1, 1, 2, 2, 3, 3, 4, 4], 2)
    assert parts == tiled._split([1, 1, 2, 2, 3, 3, 4, 4], 2)
    assert sorted(i for p in parts for i in p) == list(range(8))
    assert [sum([1, 1, 2, 2, 3, 3, 4, 4][i] for i in p) for p in parts] == [10, 10]


def test_default_block_sizes():
    assert tiled.default_block_sizes(8192, 8192) == (tiled.CPU_BLOCK_Q, tiled.CPU_BLOCK_K) == (128, 256)
    assert tiled.default_block_sizes(100, 200) == (100, 200)  # clipped to the lengths: one tile
    # 32 x 4 heads: the score tile of all heads is capped at CPU_TILE_ELEMENTS by halving the larger size
    assert tiled.default_block_sizes(512, 512, 128) == (64, 128)
    assert tiled.default_block_sizes(128, 128, 128) == (64, 128)
    assert tiled.default_block_sizes(8192, 8192, 10**6) == (16, 16)  # never below 16
    with pytest.raises(ValueError, match="q_len must be an integer >= 1, got 0"):
        tiled.default_block_sizes(0, 5)


_FORK_SCRIPT = """
import os, sys, torch
from longctx_lab.attention.tiled import tiled_attention
torch.manual_seed(0)
torch.set_num_threads(2)
q = torch.randn(1, 4, 2048, 64)
expected = tiled_attention(q, q, q, causal=True)  # big enough to make the thread pool in this process
pid = os.fork()
if pid == 0:
    out = tiled_attention(q, q, q, causal=True)
    os._exit(0 if torch.equal(out, expected) else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_gets_its_own_thread_pool():
    """Grading forks a child per student call: tiled attention there must not wait on the parent's pool
    threads, which a fork does not copy (it hung before the pool was cleared at fork). Run in a fresh
    interpreter, so that no earlier test's thread state takes part."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
