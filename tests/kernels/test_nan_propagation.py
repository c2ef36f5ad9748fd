"""A NaN in q, k or v reaches every output that depends on it, on every attention path; a row that sees no key
stays zeros (LSE -inf, dQ 0) whatever NaN lies elsewhere.

Two references, both float64 on the CPU and independent of the package's attention code:

- ``exact``: one query row at a time over only the keys it sees (the mask applied by indexing, so a masked key
  takes part in no product at all), with autograd. Its NaN entries are exactly those that depend on the NaN.
  Every one of them must be NaN in ours: nothing hides a NaN.
- ``dense``: :func:`~longctx_lab.attention.reference.naive_attention` with autograd, the textbook dense
  computation. Its products spread a NaN further through ``0 * NaN`` (a NaN value reaches every row of its
  column, as in SDPA). Ours may do the same inside a tile it visits, but may not put NaN anywhere the dense
  computation has none: nothing invents a NaN. Our other entries must match ``exact``.

For a NaN in q or k the two references agree on the forward pass, so there our output and LSE have exactly
their NaN pattern; with no mask, SDPA's too. (SDPA with a boolean mask is not a reference for the pattern:
it adds ``-inf`` to a masked score instead of replacing it, so a NaN key poisons every row, even rows that
cannot see it.)

Paths: the tiled PyTorch path (hypothesis, unit stage), the dispatcher's CPU path in float32 and float64 (unit
stage), and the Triton kernels through the dispatcher (``triton`` marker: the interpreter, or natively on CUDA
under ``make gpu-check``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_reference import visible_mask

from longctx_lab.attention.online_softmax import (
    empty_state,
    finalize,
    merge_states,
    online_logsumexp,
    online_softmax,
    update_state,
)
from longctx_lab.attention.reference import naive_attention
from longctx_lab.attention.tiled import tiled_attention
from longctx_lab.kernels.dispatch import flash_attention_with_lse, interpreter_active, select_backend

NAMES = ("out", "lse", "dq", "dk", "dv")


def _leaves(q, k, v):
    return [t.detach().cpu().double().requires_grad_() for t in (q, k, v)]


def _grads(leaves):
    return [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]


def exact_reference(q, k, v, do, *, causal, window, scale):
    """float64 ``[out, lse, dq, dk, dv]``, one query row at a time over the keys it sees (none: zeros, -inf)."""
    q, k, v = leaves = _leaves(q, k, v)
    batch, heads, q_len, _ = q.shape
    group = heads // k.shape[1]
    keep = visible_mask(q_len, k.shape[2], causal, window)
    lse = torch.full((batch, heads, q_len), -math.inf, dtype=torch.float64)
    rows, where = [], []
    for b in range(batch):
        for h in range(heads):
            for i in range(q_len):
                js = keep[i].nonzero()[:, 0]
                if js.numel() == 0:
                    continue
                s = (k[b, h // group, js] @ q[b, h, i]) * scale
                rows.append(torch.softmax(s, 0) @ v[b, h // group, js])
                lse[b, h, i] = torch.logsumexp(s.detach(), 0)
                where.append((b, h, i))
    out = torch.zeros(q.shape, dtype=torch.float64)
    if rows:
        out = out.index_put(tuple(torch.tensor(where).T), torch.stack(rows))
        (out * do.detach().cpu().double()).sum().backward()
    return [out.detach(), lse, *_grads(leaves)]


def dense_reference(q, k, v, do, *, causal, window, scale):
    """float64 ``[out, lse, dq, dk, dv]`` from naive_attention (dense products) with autograd."""
    q, k, v = leaves = _leaves(q, k, v)
    out = naive_attention(q, k, v, causal=causal, window=window, scale=scale, fully_masked="zero")
    out.backward(do.detach().cpu().double())
    kr = k.detach().repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q.detach() @ kr.transpose(-1, -2)) * scale
    lse = torch.logsumexp(scores.masked_fill(~visible_mask(q.shape[2], k.shape[2], causal, window), -math.inf), -1)
    return [out.detach(), lse, *_grads(leaves)]


def poisoned_inputs(batch, kv_heads, group, q_len, kv_len, head_dim, which, pos, dtype, device, seed):
    """Random q, k, v, dO with one NaN in ``which`` at ``pos`` (fractions in [0, 1) of each dimension)."""
    gen = torch.Generator().manual_seed(seed)
    heads = kv_heads * group
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen, dtype=torch.float64)
    k = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen, dtype=torch.float64)
    do = torch.randn(batch, heads, q_len, head_dim, generator=gen, dtype=torch.float64)
    target = {"q": q, "k": k, "v": v}[which]
    target[tuple(int(f * n) for f, n in zip(pos, target.shape, strict=True))] = math.nan
    return [t.to(dtype=dtype, device=device) for t in (q, k, v, do)]


def check_nan_propagation(run, q, k, v, do, *, causal, window, atol, rtol):
    """``run(q, k, v) -> (out, lse)`` (differentiable ``out``) against both references; see the module docstring."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out, lse = run(*leaves)
    out.backward(do)
    ours = [t.detach().cpu().double() for t in (out, lse, *(leaf.grad for leaf in leaves))]
    exact = exact_reference(q, k, v, do, causal=causal, window=window, scale=scale)
    dense = dense_reference(q, k, v, do, causal=causal, window=window, scale=scale)
    for name, o, e, d in zip(NAMES, ours, exact, dense, strict=True):
        hidden = e.isnan() & ~o.isnan()
        assert not hidden.any(), (
            f"{name}: {int(hidden.sum())} entries depend on the NaN but are not NaN, first at "
            f"{tuple(hidden.nonzero()[0].tolist())} (value {o[hidden][0].item()})"
        )
        invented = o.isnan() & ~d.isnan()
        assert not invented.any(), (
            f"{name}: {int(invented.sum())} NaN entries where even the dense computation has none, first at "
            f"{tuple(invented.nonzero()[0].tolist())}"
        )
        finite = ~o.isnan()
        torch.testing.assert_close(o[finite], e[finite], atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")
    empty = ~visible_mask(q.shape[2], k.shape[2], causal, window).any(-1)
    out64, lse64, dq64 = ours[:3]
    assert torch.all(out64[:, :, empty] == 0) and torch.all(torch.isneginf(lse64[:, :, empty]))
    assert torch.all(dq64[:, :, empty] == 0)
    return ours, exact


# --------------------------------------------------------------------- online softmax, where the fix lives


def test_online_softmax_state_keeps_nan_and_only_empty_rows_become_zeros():
    """Row 0 sees a NaN score, row 1 finite scores, row 2 nothing (all masked): NaN / finite / zeros and -inf,
    through update_state, merge_states and finalize, and through online_logsumexp / online_softmax."""
    scores = torch.tensor([[0.5, math.nan, 1.0, 2.0], [0.5, 0.1, 1.0, 2.0], [-math.inf] * 4], dtype=torch.float64)
    values = torch.arange(8.0, dtype=torch.float64).reshape(4, 2)
    state = update_state(empty_state((3,), 2, dtype=torch.float64), scores[:, :2], values[:2])
    state = merge_states(state, update_state(empty_state((3,), 2, dtype=torch.float64), scores[:, 2:], values[2:]))
    out, lse = finalize(state)
    ref = torch.softmax(scores[1], 0) @ values
    assert torch.all(out[0].isnan()) and lse[0].isnan()
    torch.testing.assert_close(out[1], ref)
    torch.testing.assert_close(lse[1], torch.logsumexp(scores[1], 0))
    assert torch.all(out[2] == 0) and torch.isneginf(lse[2])
    for block in (1, 3):
        lse_s = online_logsumexp(scores, block_size=block)
        assert lse_s[0].isnan() and torch.isneginf(lse_s[2])
        probs = online_softmax(scores, block_size=block)
        assert torch.all(probs[0].isnan()) and torch.all(probs[2] == 0)
        torch.testing.assert_close(probs[1], torch.softmax(scores[1], 0))


# ------------------------------------------------------------------------------------ tiled PyTorch path


@st.composite
def nan_cases(draw):
    which = draw(st.sampled_from(["q", "k", "v"]))
    return {
        "batch": draw(st.integers(1, 2)),
        "kv_heads": draw(st.integers(1, 2)),
        "group": draw(st.sampled_from([1, 2])),
        "q_len": draw(st.integers(1, 20)),
        "kv_len": draw(st.integers(1, 20)),
        "head_dim": draw(st.sampled_from([4, 8])),
        "which": which,
        "pos": tuple(draw(st.floats(0, 1, exclude_max=True)) for _ in range(4)),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=40)
@given(
    nan_cases(),
    st.booleans(),
    st.none() | st.integers(1, 12),
    st.integers(2, 8),
    st.integers(2, 8),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_tiled_path_propagates_nan(case, causal, window, block_q, block_k, dtype):
    q, k, v, do = poisoned_inputs(**case, dtype=dtype, device="cpu")

    def run(q_, k_, v_):
        return tiled_attention(q_, k_, v_, causal=causal, window=window, block_q=block_q, block_k=block_k,
                               return_lse=True)

    tol = 1e-10 if dtype == torch.float64 else 1e-5
    check_nan_propagation(run, q, k, v, do, causal=causal, window=window, atol=tol, rtol=tol)


@pytest.mark.parametrize("which", ["q", "k"])
def test_tiled_nan_pattern_equals_naive_and_sdpa_without_mask(which):
    """No mask: ours, naive_attention and SDPA agree on which output entries are NaN (a NaN query poisons its
    row; a NaN key every row), and a NaN key no longer zeroes every row."""
    q, k, v, do = poisoned_inputs(1, 2, 2, 20, 20, 8, which, (0.0, 0.5, 0.5, 0.5), torch.float64, "cpu", seed=1)
    ours = tiled_attention(q, k, v, block_q=4, block_k=4)
    naive = naive_attention(q, k, v)
    sdpa = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert torch.equal(ours.isnan(), naive.isnan()) and torch.equal(ours.isnan(), sdpa.isnan())
    assert ours.isnan().any() and not ours.isnan().all()  # the poison is real, and stays in its KV head


def test_tiled_nan_key_reaches_only_the_rows_that_see_it():
    """Causal: key 9 is seen by rows 9.. only; rows 0..8 keep their NaN-free values (same tile or not)."""
    q, k, v, do = poisoned_inputs(1, 1, 1, 16, 16, 8, "k", (0.0, 0.0, 9 / 16, 0.0), torch.float32, "cpu", seed=2)
    out, lse = tiled_attention(q, k, v, causal=True, block_q=4, block_k=4, return_lse=True)
    assert torch.all(out[0, 0, 9:].isnan()) and torch.all(lse[0, 0, 9:].isnan())
    clean = tiled_attention(q[:, :, :9], k[:, :, :9], v[:, :, :9], causal=True, block_q=4, block_k=4)
    torch.testing.assert_close(out[:, :, :9], clean, rtol=0, atol=0)


def test_fully_masked_rows_stay_zero_next_to_a_nan_value():
    """q_len 12 > kv_len 4, causal: rows 0..7 see no key. A NaN value in key 0 shares their tiles (0 * NaN), yet
    they stay zeros, LSE -inf, dQ 0, while the rows that see key 0 get NaN in that column."""
    q, k, v, do = poisoned_inputs(1, 1, 1, 12, 4, 8, "v", (0.0, 0.0, 0.0, 0.25), torch.float32, "cpu", seed=3)
    q.requires_grad_()
    out, lse = tiled_attention(q, k, v, causal=True, block_q=12, block_k=4, return_lse=True)
    out.backward(do)
    assert torch.all(out[0, 0, :8] == 0) and torch.all(torch.isneginf(lse[0, 0, :8]))
    assert torch.all(q.grad[0, 0, :8] == 0)
    assert torch.all(out[0, 0, 8:, 2].isnan()) and not out[0, 0, 8:, [0, 1, 3, 4, 5, 6, 7]].isnan().any()


# ------------------------------------------------------------------------------ dispatcher, CPU path

DISPATCH_CASES = [
    # (q_len, kv_len, causal, window, which, pos)
    (40, 40, True, 9, "q", (0.0, 0.3, 0.6, 0.5)),
    (40, 40, True, 9, "k", (0.0, 0.0, 0.4, 0.5)),
    (40, 40, False, None, "v", (0.0, 0.0, 0.7, 0.1)),
    # q_len > kv_len: rows 0..9 see no key, and share a 16-row tile with rows that do
    (40, 30, True, None, "v", (0.0, 0.0, 0.1, 0.9)),
    (40, 30, True, None, "k", (0.0, 0.0, 0.3, 0.9)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("q_len,kv_len,causal,window,which,pos", DISPATCH_CASES)
def test_dispatcher_cpu_path_propagates_nan(q_len, kv_len, causal, window, which, pos, dtype):
    q, k, v, do = poisoned_inputs(1, 2, 2, q_len, kv_len, 16, which, pos, dtype, "cpu", seed=q_len + kv_len)
    backend = "torch" if interpreter_active() else "auto"  # a plain `pytest tests` runs this under the interpreter
    assert select_backend(q, backend) == "torch"

    def run(q_, k_, v_):
        return flash_attention_with_lse(q_, k_, v_, causal=causal, window=window, backend=backend)

    tol = 1e-10 if dtype == torch.float64 else 2e-5
    ours, exact = check_nan_propagation(run, q, k, v, do, causal=causal, window=window, atol=tol, rtol=tol)
    assert exact[0].isnan().any()  # every case's NaN reaches some output


# --------------------------------------------------------------- Triton kernels (interpreter or CUDA)


@pytest.mark.triton
@pytest.mark.parametrize("q_len,kv_len,causal,window,which,pos", DISPATCH_CASES)
def test_triton_path_propagates_nan(q_len, kv_len, causal, window, which, pos, device):
    """The Triton kernels through the dispatcher (16-row tiles under the interpreter, the GPU's tiles on CUDA)."""
    q, k, v, do = poisoned_inputs(1, 2, 2, q_len, kv_len, 16, which, pos, torch.float32, device, seed=q_len + kv_len)
    assert select_backend(q, "triton") in ("triton", "triton-interpreter")

    def run(q_, k_, v_):
        return flash_attention_with_lse(q_, k_, v_, causal=causal, window=window, backend="triton")

    ours, exact = check_nan_propagation(run, q, k, v, do, causal=causal, window=window, atol=2e-5, rtol=2e-5)
    assert exact[0].isnan().any()
