"""The dispatcher's CPU default: PyTorch's fused SDPA kernel where it computes the same thing, the tiled path
everywhere else.

References: float64 textbook attention (:func:`naive_attention`, with autograd) and the tiled PyTorch path
(``backend="torch"``, the course's reference implementation). Both routes must give the same output, LSE and
gradients, within the precision of the input dtype; the cases SDPA cannot express (windows, bottom-right
causal with ``q_len != kv_len``, float64, NaN inputs) must take the tiled path.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.reference import naive_attention
from longctx_lab.kernels.dispatch import flash_attention, flash_attention_with_lse, interpreter_active, select_backend

pytestmark = pytest.mark.skipif(
    interpreter_active(), reason="under TRITON_INTERPRET=1 the CPU default is the interpreter, not the PyTorch paths"
)

# Max abs error allowed against float64, relative to max(1, |reference|): float32 rounding of n-term sums,
# bfloat16's 8-bit mantissa (inputs rounded to bf16 before both paths, so only the arithmetic differs).
TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2, torch.float16: 4e-3}


def _inputs(batch, heads, kv_heads, q_len, kv_len, head_dim, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen).to(dtype)
    dout = torch.randn(batch, heads, q_len, head_dim, generator=gen).to(dtype)
    return q, k, v, dout


def _run(fn, q, k, v, dout):
    """``[out, lse, dq, dk, dv]`` of ``fn(q, k, v) -> (out, lse)`` with autograd, all as float64."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out, lse = fn(*leaves)
    out.backward(dout.to(out.dtype))
    return [t.detach().double() for t in (out, lse, *(x.grad for x in leaves))]


def _exact(q, k, v, dout, causal, window, scale=None):
    """float64 naive attention and its LSE (rows with no key: zeros, -inf)."""
    group = q.shape[1] // k.shape[1]

    def fn(q_, k_, v_):
        out = naive_attention(q_, k_, v_, causal=causal, window=window, scale=scale, fully_masked="zero")
        s = q_ @ k_.repeat_interleave(group, dim=1).transpose(-2, -1) * (scale or 1 / math.sqrt(q.shape[-1]))
        i = torch.arange(q.shape[2])[:, None] + k.shape[2] - q.shape[2]
        j = torch.arange(k.shape[2])[None, :]
        keep = torch.ones_like(s, dtype=torch.bool)
        if causal:
            keep &= j <= i
        if window is not None:
            keep &= (i - j < window) if causal else ((i - j).abs() < window)
        return out, torch.logsumexp(s.masked_fill(~keep, float("-inf")), dim=-1)

    return _run(fn, *(t.double() for t in (q, k, v, dout)))


def _check(q, k, v, dout, *, causal, window=None, expect, scale=None):
    assert select_backend(q, k=k, v=v, causal=causal, window=window) == expect
    ours = _run(lambda *t: flash_attention_with_lse(*t, causal=causal, window=window, scale=scale), q, k, v, dout)
    tiled = _run(lambda *t: flash_attention_with_lse(*t, causal=causal, window=window, scale=scale, backend="torch"),
                 q, k, v, dout)
    exact = _exact(q, k, v, dout, causal, window, scale)
    tol = TOL.get(q.dtype, 1e-10)
    for name, a, t, e in zip(("out", "lse", "dq", "dk", "dv"), ours, tiled, exact, strict=True):
        finite = torch.isfinite(e)
        assert torch.equal(torch.isneginf(a), torch.isneginf(e)), name
        bound = tol * max(1.0, e[finite].abs().max().item()) if finite.any() else 0.0
        assert (a[finite] - e[finite]).abs().max().item() <= bound, f"{name}: vs float64"
        assert (a[finite] - t[finite]).abs().max().item() <= 2 * bound, f"{name}: vs tiled"
    return ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "shape, causal",
    [
        ((2, 4, 4, 37, 37, 32), True),  # causal square: top-left = bottom-right
        ((1, 2, 2, 20, 45, 16), False),  # not causal: alignment does not matter
        ((1, 6, 2, 33, 33, 64), True),  # GQA, group 3
        ((2, 4, 1, 9, 30, 16), False),  # MQA
    ],
)
def test_sdpa_route_matches_float64_and_tiled(dtype, shape, causal):
    q, k, v, dout = _inputs(*shape, dtype, seed=sum(shape))
    _check(q, k, v, dout, causal=causal, expect="torch-sdpa")


def test_sdpa_route_custom_scale_and_lse_convention():
    q, k, v, dout = _inputs(1, 4, 2, 24, 24, 16, torch.float32, seed=3)
    out, lse, *_ = _check(q, k, v, dout, causal=True, scale=0.3, expect="torch-sdpa")
    _, lse_tiled = flash_attention_with_lse(q, k, v, causal=True, scale=0.3, backend="torch")
    sdpa_lse = flash_attention_with_lse(q, k, v, causal=True, scale=0.3)[1]
    assert sdpa_lse.shape == (1, 4, 24) and sdpa_lse.dtype == torch.float32 and sdpa_lse.is_contiguous()
    assert not sdpa_lse.requires_grad
    torch.testing.assert_close(sdpa_lse, lse_tiled, rtol=1e-5, atol=1e-5)  # natural log, same rows
    assert flash_attention(q, k, v, causal=True, scale=0.3).shape == q.shape


@pytest.mark.parametrize(
    "shape, causal, window, dtype",
    [
        ((1, 4, 2, 30, 30, 16), True, 7, torch.float32),  # window: SDPA has no band mask
        ((1, 4, 2, 30, 30, 16), False, 5, torch.float32),
        ((1, 2, 2, 12, 40, 16), True, None, torch.float32),  # causal, q_len < kv_len: bottom-right
        ((1, 2, 1, 40, 25, 16), True, None, torch.bfloat16),  # q_len > kv_len: rows with no key
        ((1, 2, 2, 30, 30, 16), True, None, torch.float64),  # float64 stays on the reference path
    ],
)
def test_cases_sdpa_cannot_express_take_the_tiled_path(shape, causal, window, dtype):
    q, k, v, dout = _inputs(*shape, dtype, seed=11)
    _check(q, k, v, dout, causal=causal, window=window, expect="torch")


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_nan_inputs_take_the_tiled_path(which):
    q, k, v, dout = _inputs(1, 2, 2, 20, 20, 16, torch.float32, seed=5)
    {"q": q, "k": k, "v": v}[which][0, 0, 10, 3] = float("nan")
    assert select_backend(q, k=k, v=v, causal=True) == "torch"
    out, lse = flash_attention_with_lse(q, k, v, causal=True)
    ref, ref_lse = flash_attention_with_lse(q, k, v, causal=True, backend="torch")
    assert torch.equal(out.isnan(), ref.isnan()) and torch.equal(lse.isnan(), ref_lse.isnan())
    torch.testing.assert_close(out, ref, equal_nan=True)
    if which != "v":  # a NaN value may reach rows of its tile through 0 * NaN (tiled module docstring)
        assert not out[0, 0, :10].isnan().any()  # rows before the NaN key (or query row) do not see it


def test_backend_torch_forces_the_tiled_path_and_q_alone_reports_torch():
    q, k, v, _ = _inputs(1, 2, 2, 16, 16, 16, torch.float32, seed=1)
    assert select_backend(q, k=k, v=v, causal=True) == "torch-sdpa"
    assert select_backend(q, "torch", k=k, v=v, causal=True) == "torch"
    assert select_backend(q) == "torch"  # without k the SDPA question cannot be answered
    with pytest.raises(ValueError, match="backend must be one of"):
        select_backend(q, "sdpa", k=k, v=v)


@given(
    batch=st.integers(1, 2),
    kv_heads=st.integers(1, 2),
    group=st.sampled_from([1, 2, 4]),
    q_len=st.integers(1, 40),
    kv_len=st.integers(1, 40),
    head_dim=st.sampled_from([16, 32, 24, 80, 5]),  # any head dim: the PyTorch paths take them all
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(1, 20)),
    seed=st.integers(0, 2**16),
)
def test_route_property(batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, seed):
    """Whatever route the dispatcher takes, it is the one the rule names, and the answer matches float64."""
    q, k, v, dout = _inputs(batch, kv_heads * group, kv_heads, q_len, kv_len, head_dim, torch.float32, seed)
    sdpa_ok = window is None and (not causal or q_len == kv_len)
    _check(q, k, v, dout, causal=causal, window=window, expect="torch-sdpa" if sdpa_ok else "torch")


def test_bench_comparison_rows():
    """The benchmark's interleaved SDPA vs tiled rows (tiny shape, no timing asserted)."""
    import statistics

    from longctx_lab.cli.bench.attention import compare_sdpa_tiled

    rows = compare_sdpa_tiled(2, 2, 24, 16, repeats=3)
    assert [r["phase"] for r in rows] == ["fwd", "fwd_bwd"]
    for r in rows:
        assert len(r["sdpa_s"]) == len(r["tiled_s"]) == 3
        assert r["sdpa_median_s"] == statistics.median(r["sdpa_s"])
        assert r["tiled_over_sdpa"] == r["tiled_median_s"] / r["sdpa_median_s"]
        assert r["dispatcher"] == "torch-sdpa" and r["causal"] and r["dtype"] == "float32"
