"""The dispatcher's CPU path takes float64 and is exact to float64 rounding (unit stage, no interpreter).

References: SDPA in float64 with a boolean mask built here (GQA via ``enable_gqa``), and the package's
``naive_attention`` for the gradients' second opinion.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from mask_reference import visible_mask

from longctx_lab.kernels.dispatch import flash_attention, flash_attention_with_lse, interpreter_active, select_backend


@settings(max_examples=20)
@given(
    st.integers(1, 2), st.integers(1, 2), st.sampled_from([1, 2]), st.integers(1, 48), st.integers(1, 48),
    st.sampled_from([16, 32]), st.booleans(), st.none() | st.integers(1, 20), st.integers(0, 2**16),
)
def test_float64_matches_sdpa_float64(batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, seed):
    backend = "torch" if interpreter_active() else "auto"  # auto picks torch for float64 even under the interpreter
    gen = torch.Generator().manual_seed(seed)
    heads = kv_heads * group
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen, dtype=torch.float64)
    k, v = (torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen, dtype=torch.float64) for _ in range(2))
    do = torch.randn(batch, heads, q_len, head_dim, generator=gen, dtype=torch.float64)
    assert select_backend(q, "auto") == "torch"

    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    out, lse = flash_attention_with_lse(*ours, causal=causal, window=window, backend=backend)
    out.backward(do)
    assert out.dtype == torch.float64 and lse.dtype == torch.float64

    keep = visible_mask(q_len, kv_len, causal, window)
    empty = ~keep.any(-1)
    ref_in = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(*ref_in, attn_mask=keep | empty[:, None], enable_gqa=True)
    ref = torch.where(empty[:, None], torch.zeros((), dtype=torch.float64), ref)  # rows that see no key: zeros
    ref.backward(do)
    scores = (q @ k.repeat_interleave(group, dim=1).transpose(-1, -2)) / math.sqrt(head_dim)
    ref_lse = torch.logsumexp(scores.masked_fill(~keep, -math.inf), -1)

    torch.testing.assert_close(out.detach(), ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lse, ref_lse, rtol=1e-12, atol=1e-12)
    for name, a, b in zip("qkv", ours, ref_in, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-11, atol=1e-11, msg=lambda m, n=name: f"d{n}: {m}")


def test_float64_is_more_exact_than_float32():
    """The float64 path really computes in float64 (not float32 and cast back): its error is ~1e-16, not ~1e-7."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 32, generator=gen, dtype=torch.float64) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    err64 = (flash_attention(q, k, v, causal=True, backend="torch") - ref).abs().max().item()
    err32 = (flash_attention(*(t.float() for t in (q, k, v)), causal=True, backend="torch").double() - ref)
    assert err64 < 1e-13 < err32.abs().max().item()


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_float64_rejects_mixed_dtypes(backend):
    q = torch.randn(1, 1, 8, 16, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"q, k and v must share one dtype, got q torch\.float64, k torch\.float32"):
        flash_attention(q, q.float(), q.float(), backend=backend)
