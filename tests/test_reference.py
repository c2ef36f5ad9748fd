"""The reference attention against torch's SDPA (float64) and float64 hand math."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention import naive_attention
from longctx_lab.attention.masks import build_mask


@given(batch=st.integers(1, 2), kv_heads=st.integers(1, 3), group=st.integers(1, 3), q_len=st.integers(1, 17),
       kv_len=st.integers(1, 17), head_dim=st.sampled_from([1, 4, 16]), causal=st.booleans(),
       window=st.one_of(st.none(), st.integers(1, 20)), seed=st.integers(0, 2**16))
def test_matches_sdpa_float64(batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, seed):
    if causal and q_len > kv_len:
        kv_len = q_len  # rows with no key are tested separately
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, kv_heads * group, q_len, head_dim, generator=g, dtype=torch.float64)
    k = torch.randn(batch, kv_heads, kv_len, head_dim, generator=g, dtype=torch.float64)
    v = torch.randn(batch, kv_heads, kv_len, head_dim, generator=g, dtype=torch.float64)
    mask = build_mask(q_len, kv_len, causal=causal, window=window)
    if mask is not None and not bool(mask.any(-1).all()):
        with pytest.raises(ValueError, match="no key to attend to"):
            naive_attention(q, k, v, causal=causal, window=window)
        return
    out = naive_attention(q, k, v, causal=causal, window=window)
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                                         attn_mask=mask)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_single_query_by_hand():
    q = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    k = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]], dtype=torch.float64)
    v = torch.tensor([[[[10.0, -1.0], [20.0, 3.0]]]], dtype=torch.float64)
    w = math.exp(1 / math.sqrt(2))  # score of the matching key, scaled by 1/sqrt(2); the other scores 0
    expected = [(10 * w + 20) / (w + 1), (-1 * w + 3) / (w + 1)]
    assert naive_attention(q, k, v)[0, 0, 0].tolist() == pytest.approx(expected, rel=1e-14)


def test_fully_masked_rows_error_or_zero():
    q = torch.randn(1, 1, 4, 8)
    k = v = torch.randn(1, 1, 2, 8)
    with pytest.raises(ValueError, match="no key to attend to"):
        naive_attention(q, k, v, causal=True)
    out = naive_attention(q, k, v, causal=True, fully_masked="zero")
    assert torch.equal(out[0, 0, :2], torch.zeros(2, 8))
    assert not torch.isnan(out).any()


def test_returns_weights_that_sum_to_one():
    q, k, v = (torch.randn(2, 2, 5, 4, dtype=torch.float64) for _ in range(3))
    _, w = naive_attention(q, k, v, causal=True, return_weights=True)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 5, dtype=torch.float64))
    assert torch.equal(w[..., 0, 1:], torch.zeros(2, 2, 4, dtype=torch.float64))


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"q": torch.randn(1, 2, 3)}, ValueError, "q must have 4 dimensions"),
    ({"k": torch.randn(1, 2, 3, 8, dtype=torch.float64)}, TypeError, "share one dtype"),
    ({"v": torch.randn(1, 2, 4, 8)}, ValueError, "k and v must have the same shape"),
    ({"q": torch.randn(1, 3, 3, 8)}, ValueError, "multiple of k/v heads"),
    ({"k": torch.randn(1, 2, 3, 4), "v": torch.randn(1, 2, 3, 4)}, ValueError, "head_dim 8"),
    ({"window": 0}, ValueError, "window must be an integer >= 1, got 0"),
    ({"scale": -1.0}, ValueError, "scale must be > 0"),
    ({"fully_masked": "nan"}, ValueError, "fully_masked must be"),
    ({"mask": torch.ones(3, 3)}, TypeError, "mask must be a boolean"),
    ({"mask": torch.ones(2, 4, dtype=torch.bool)}, ValueError, "mask must broadcast"),
    ({"q": [[1.0]]}, TypeError, "q must be a torch.Tensor"),
    ({"q": torch.ones(1, 2, 3, 8, dtype=torch.int64)}, TypeError, "floating-point"),
])
def test_bad_input(kwargs, exc, words):
    args = {"q": torch.randn(1, 2, 3, 8), "k": torch.randn(1, 2, 3, 8), "v": torch.randn(1, 2, 3, 8)}
    args.update(kwargs)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    with pytest.raises(exc, match=words):
        naive_attention(q, k, v, **args)
