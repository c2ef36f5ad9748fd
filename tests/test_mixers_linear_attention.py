"""Causal linear attention (Katharopoulos et al. 2020): recurrent == chunked == quadratic == a float64 loop."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.mixers.linear_attention import (
    LinearAttentionState,
    elu_plus_one,
    linear_attention_chunked,
    linear_attention_quadratic,
    linear_attention_recurrent,
)


def _qkv(seed, batch=2, heads=3, seq=11, d_k=4, d_v=5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, seq, d, generator=gen, dtype=dtype) for d in (d_k, d_k, d_v)]


def _loop_reference(q, k, v, eps):
    """y_i = sum_{j<=i} (phi(q_i).phi(k_j)) v_j / (sum_{j<=i} phi(q_i).phi(k_j) + eps), one row at a time."""
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    out = torch.empty(*q.shape[:3], v.shape[-1], dtype=torch.float64)
    for i in range(q.shape[2]):
        w = (fq[:, :, i, None, :] * fk[:, :, : i + 1]).sum(-1)  # (b, h, i+1)
        out[:, :, i] = (w[..., None] * v[:, :, : i + 1]).sum(2) / (w.sum(-1, keepdim=True) + eps)
    return out


def test_elu_plus_one_is_positive_and_is_elu_plus_one():
    x = torch.linspace(-30, 5, 50, dtype=torch.float64)
    assert (elu_plus_one(x) > 0).all()
    torch.testing.assert_close(elu_plus_one(x), torch.where(x > 0, x + 1, torch.exp(x)))


@given(seq=st.integers(1, 40), chunk=st.integers(1, 50), d_k=st.integers(1, 6), d_v=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_recurrent_chunked_and_quadratic_agree_with_a_float64_loop(seq, chunk, d_k, d_v, seed):
    q, k, v = _qkv(seed, seq=seq, d_k=d_k, d_v=d_v)
    expected = _loop_reference(q, k, v, 1e-6)
    rec, rec_state = linear_attention_recurrent(q, k, v)
    chk, chk_state = linear_attention_chunked(q, k, v, chunk_size=chunk)
    torch.testing.assert_close(linear_attention_quadratic(q, k, v), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rec, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chk, expected, rtol=1e-12, atol=1e-12)
    fk = F.elu(k) + 1
    torch.testing.assert_close(rec_state.s, torch.einsum("bhtf,bhtv->bhfv", fk, v))
    torch.testing.assert_close(chk_state.s, rec_state.s)
    torch.testing.assert_close(chk_state.z, fk.sum(2))


@given(seq=st.integers(2, 30), split=st.integers(1, 29), chunk=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_a_carried_state_continues_the_sequence(seq, split, chunk, seed):
    split = min(split, seq - 1)
    q, k, v = _qkv(seed, seq=seq)
    whole, _ = linear_attention_chunked(q, k, v, chunk_size=chunk)
    first, state = linear_attention_recurrent(q[:, :, :split], k[:, :, :split], v[:, :, :split])
    second, _ = linear_attention_chunked(q[:, :, split:], k[:, :, split:], v[:, :, split:], chunk_size=chunk,
                                         state=state)
    torch.testing.assert_close(torch.cat([first, second], 2), whole, rtol=1e-12, atol=1e-12)


def test_float32_chunked_is_close_to_the_float64_reference():
    q, k, v = _qkv(3, seq=100)
    ref = linear_attention_quadratic(q, k, v)
    got, _ = linear_attention_chunked(q.float(), k.float(), v.float(), chunk_size=16)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5)


def test_causal_a_future_token_does_not_change_earlier_outputs():
    q, k, v = _qkv(4, seq=12)
    before, _ = linear_attention_chunked(q, k, v, chunk_size=5)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 7] += 3.0
    v2[:, :, 7] -= 2.0
    after, _ = linear_attention_chunked(q, k2, v2, chunk_size=5)
    torch.testing.assert_close(after[:, :, :7], before[:, :, :7], rtol=0, atol=0)
    assert not torch.allclose(after[:, :, 7:], before[:, :, 7:])


def test_features_given_directly():
    q, k, v = _qkv(5)
    fq, fk = elu_plus_one(q), elu_plus_one(k)
    torch.testing.assert_close(linear_attention_quadratic(fq, fk, v, feature_map=None),
                               linear_attention_quadratic(q, k, v))
    with pytest.raises(ValueError, match="non-negative"):
        linear_attention_recurrent(q, k, v, feature_map=None)


def test_bad_inputs_name_the_argument():
    q, k, v = _qkv(6)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 0"):
        linear_attention_chunked(q, k, v, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        linear_attention_chunked(q, k, v, chunk_size=2.0)
    with pytest.raises(ValueError, match="q must have 4 dimensions"):
        linear_attention_recurrent(q[0], k, v)
    with pytest.raises(ValueError, match="q and k must have the same shape"):
        linear_attention_recurrent(q, k[..., :2], v)
    with pytest.raises(ValueError, match="v must have q's"):
        linear_attention_recurrent(q, k, v[:, :, :3])
    with pytest.raises(TypeError, match="share one dtype"):
        linear_attention_recurrent(q, k.float(), v)
    with pytest.raises(TypeError, match="floating-point"):
        linear_attention_recurrent(q, k, v.long())
    with pytest.raises(ValueError, match="eps must be >= 0"):
        linear_attention_recurrent(q, k, v, eps=-1.0)
    with pytest.raises(TypeError, match="feature_map must be callable"):
        linear_attention_recurrent(q, k, v, feature_map="elu")
    _, state = linear_attention_recurrent(q, k, v)
    with pytest.raises(ValueError, match=r"state.s must have shape \(2, 3, 4, 5\)"):
        linear_attention_recurrent(q, k, v, state=LinearAttentionState(state.s[:, :, :2], state.z))
    with pytest.raises(TypeError, match="state.z must have dtype"):
        linear_attention_recurrent(q, k, v, state=LinearAttentionState(state.s, state.z.float()))
    with pytest.raises(TypeError, match="state must be a LinearAttentionState"):
        linear_attention_recurrent(q, k, v, state=(state.s, state.z))
