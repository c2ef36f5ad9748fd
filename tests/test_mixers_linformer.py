"""Linformer projects the sequence length, not the features, and so cannot be causal as published."""

import math

import pytest
import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.mixers.linformer import LinformerMixer, linformer_attention


def _qkv(seed, batch=2, heads=2, n=12, d=4):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, d, generator=gen, dtype=torch.float64) for _ in range(3)]


def test_it_is_softmax_attention_over_projected_positions():
    q, k, v = _qkv(0)
    gen = torch.Generator().manual_seed(1)
    e, f = (torch.randn(5, 12, generator=gen, dtype=torch.float64) for _ in range(2))
    k_low = torch.einsum("rn,bhnd->bhrd", e, k)
    v_low = torch.einsum("rn,bhnd->bhrd", f, v)
    scores = torch.einsum("bhid,bhrd->bhir", q, k_low) / math.sqrt(4)
    expected = torch.softmax(scores, -1) @ v_low
    out = linformer_attention(q, k, v, e, f)
    assert out.shape == q.shape  # the head_dim is unchanged: only n became k_proj inside
    torch.testing.assert_close(out, expected)


def test_identity_projections_give_full_non_causal_attention():
    q, k, v = _qkv(2)
    eye = torch.eye(12, dtype=torch.float64)
    torch.testing.assert_close(linformer_attention(q, k, v, eye, eye), naive_attention(q, k, v, causal=False))


def test_a_future_token_changes_earlier_outputs():
    """Why Linformer is not causal: every projected key mixes all n positions, later ones included."""
    torch.manual_seed(0)
    m = LinformerMixer(16, 2, seq_len=10, k_proj=4).double()
    assert m.causal is False
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    y = m(x)
    x2 = x.clone()
    x2[0, 9] += 1.0  # change only the last token
    y2 = m(x2)
    assert (y2[0, :9] - y[0, :9]).abs().amax(-1).min() > 1e-6  # every earlier output moved


def test_it_has_no_decode_step_and_a_fixed_length():
    m = LinformerMixer(16, 2, seq_len=10, k_proj=4)
    with pytest.raises(NotImplementedError, match="not causal"):
        m.step(torch.zeros(1, 16), None)
    with pytest.raises(NotImplementedError, match="no decode state"):
        m.init_state(1)
    with pytest.raises(ValueError, match="x must have seq = seq_len = 10"):
        m(torch.zeros(1, 9, 16))


def test_bad_projections_name_themselves():
    q, k, v = _qkv(3)
    e = torch.zeros(4, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"e must have shape \(k_proj, n\) with n = 12"):
        linformer_attention(q, k, v, e[:, :11], e)
    with pytest.raises(ValueError, match="e and f must have the same shape"):
        linformer_attention(q, k, v, e, e[:3])
    with pytest.raises(TypeError, match="f must have q's dtype"):
        linformer_attention(q, k, v, e, e.float())
    with pytest.raises(ValueError, match="k_proj must be an integer >= 1, got 0"):
        LinformerMixer(16, 2, seq_len=10, k_proj=0)
